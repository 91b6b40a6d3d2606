//! Pushes one project in a loop on a store, without HTTP, and prints push and pull latency:
//! `push_loop <sqlite file or postgres URL>`; `N` sets the number of pushes (default 2,000).
//! Lists pushes slower than 0.9 ms as (ms since the first push, µs), and p50/p99 per 2,000.
//! Texts are 10 KiB windows of this repository's markdown, as in the gateway bench (real docs
//! compress ~1.5x, so Postgres stores them out of line); `LOOP_TEXT=repeated` sends one line
//! over and over instead, the payload of stop 14 and before.
#![allow(clippy::unwrap_used)]
use idse_store::*;
use std::time::Instant;
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::args().nth(1).unwrap();
    let store = open(&url, &OpenOptions::default()).await.unwrap();
    let stages = [
        "intent_md",
        "context_md",
        "spec_md",
        "plan_md",
        "tasks_md",
        "implementation_md",
        "feedback_md",
    ];
    const PROSE: &str = concat!(
        include_str!("../../../README.md"),
        include_str!("../../../docs/benchmarks.md")
    );
    let repeated = std::env::var("LOOP_TEXT").as_deref() == Ok("repeated");
    let text = |s: &str, v: u64| {
        if repeated {
            return format!(
                "# {s} {v}\n{}",
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n".repeat(180)
            );
        }
        // A window that moves with the version, cut at a character boundary.
        let span = PROSE.len().saturating_sub(10 * 1024).max(1);
        let mut at = (v as usize)
            .wrapping_mul(7919)
            .wrapping_add(s.len() * 104_729)
            % span;
        while !PROSE.is_char_boundary(at) {
            at += 1;
        }
        let mut end = (at + 10 * 1024).min(PROSE.len());
        while !PROSE.is_char_boundary(end) {
            end -= 1;
        }
        format!("# {s} {v}\n{}", &PROSE[at..end])
    };
    let mut input = PushInput {
        project_name: format!("loop-{}", std::process::id()),
        session_id: "__blueprint__".into(),
        ..Default::default()
    };
    for s in stages {
        input.artifacts.insert(s.into(), text(s, 0));
    }
    let out = store.push(input.clone(), chrono::Utc::now()).await.unwrap();
    input.project_id = Some(out.project_id);
    let mut hashes = out.hashes;
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut lat = vec![];
    let mut starts = vec![];
    let t0 = Instant::now();
    for v in 1..=n {
        let s = stages[(v % 7) as usize];
        input.artifacts.insert(s.into(), text(s, v));
        input.base = Some(hashes.clone());
        let t = Instant::now();
        starts.push(t);
        hashes = store
            .push(input.clone(), chrono::Utc::now())
            .await
            .unwrap()
            .hashes;
        lat.push(t.elapsed());
    }
    let slow: Vec<(u128, u128)> = lat
        .iter()
        .zip(&starts)
        .filter(|(d, _)| d.as_micros() > 900)
        .map(|(d, s)| (s.duration_since(t0).as_millis(), d.as_micros()))
        .collect();
    println!("slow: {slow:?}");
    for (i, part) in lat.chunks(2000).enumerate() {
        let mut part = part.to_vec();
        part.sort();
        println!(
            "part {i}: p50 {:?} p99 {:?}",
            part[part.len() / 2],
            part[part.len() * 99 / 100]
        );
    }
    lat.sort();
    println!(
        "push p50 {:?} p99 {:?} max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    );
    let mut lat = vec![];
    for _ in 0..n {
        let t = Instant::now();
        store.pull(out.project_id, None).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "pull p50 {:?} p99 {:?} max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat[lat.len() - 1]
    );
}
