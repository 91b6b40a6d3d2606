//! `cargo bench -p idse-core --bench core`: three-way merge of a 10,000-line document with 50
//! edits per side, against the `diffy` crate in the same run; and `status` of a workspace with
//! 1,000 projects × 7 stages, the first read (cold: nothing cached in the process; the OS page
//! cache may hold the files) and repeated reads (warm).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use idse_core::{merge3, project_status, MergeOptions, Workspace};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn document(lines: usize) -> Vec<String> {
    (0..lines)
        .map(|i| {
            format!("Line {i}: the spec says what the system must do, and why, in plain words.")
        })
        .collect()
}

/// 50 single-line edits at distinct places, away from the other side's (`offset` apart).
fn edit(base: &[String], rng: &mut StdRng, offset: usize, tag: &str) -> String {
    let mut lines = base.to_vec();
    let step = base.len() / 50;
    for k in 0..50 {
        let at = k * step + offset + rng.random_range(0..step / 4);
        lines[at] = format!("{tag} rewrote line {at} with a new sentence.");
    }
    lines.join("\n") + "\n"
}

fn bench_merge() {
    let mut rng = StdRng::seed_from_u64(7);
    let base_lines = document(10_000);
    let base = base_lines.join("\n") + "\n";
    let local = edit(&base_lines, &mut rng, 10, "local");
    let remote = edit(&base_lines, &mut rng, 120, "remote");
    let ours = merge3(&base, &local, &remote, &MergeOptions::default());
    assert!(ours.is_clean());
    let theirs = diffy::merge(&base, &local, &remote).unwrap();
    assert_eq!(ours.text, theirs, "both merges agree on the result");
    let runs = 30;
    let time = |f: &dyn Fn()| {
        median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let ours_t = time(&|| {
        std::hint::black_box(merge3(&base, &local, &remote, &MergeOptions::default()));
    });
    let diffy_t = time(&|| {
        std::hint::black_box(diffy::merge(&base, &local, &remote).unwrap());
    });
    println!(
        "merge 10,000 lines, 50 edits per side: idse {:.2} ms, diffy {:.2} ms (median of {runs})",
        ours_t.as_secs_f64() * 1e3,
        diffy_t.as_secs_f64() * 1e3
    );
}

fn bench_status() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::at(dir.path());
    for i in 0..1000 {
        ws.init_project(&format!("project-{i:04}"), None, "bench", Utc::now())
            .unwrap();
    }
    let status_all = || {
        let mut stages = 0;
        for p in ws.projects().unwrap() {
            stages += project_status(&p, None).unwrap().stages.len();
        }
        assert_eq!(stages, 7000);
    };
    let t = Instant::now();
    status_all();
    let cold = t.elapsed();
    let warm = median(
        (0..10)
            .map(|_| {
                let t = Instant::now();
                status_all();
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "status of 1,000 projects x 7 stages: first {:.1} ms, warm {:.1} ms (median of 10)",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
}

fn main() {
    bench_merge();
    bench_status();
}
