#![allow(clippy::unwrap_used)]
use std::time::Instant;
use idse_store::*;
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::args().nth(1).unwrap();
    let store = open(&url, &OpenOptions::default()).await.unwrap();
    let stages = ["intent_md","context_md","spec_md","plan_md","tasks_md","implementation_md","feedback_md"];
    let text = |s: &str, v: u64| format!("# {s} {v}\n{}", "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n".repeat(180));
    let name = format!("loop-{}", std::process::id());
    let mut input = PushInput { project_name: name.clone(), session_id: "__blueprint__".into(), ..Default::default() };
    for s in stages { input.artifacts.insert(s.into(), text(s, 0)); }
    let out = store.push(input.clone(), chrono::Utc::now()).await.unwrap();
    input.project_id = Some(out.project_id);
    let mut hashes = out.hashes;
    let n = 1000;
    let t = Instant::now();
    for v in 1..=n {
        let s = stages[(v % 7) as usize];
        input.artifacts.insert(s.into(), text(s, v));
        input.base = Some(hashes.clone());
        hashes = store.push(input.clone(), chrono::Utc::now()).await.unwrap().hashes;
    }
    println!("push: {:?}/op", t.elapsed() / n as u32);
    let t = Instant::now();
    for _ in 0..n { store.pull(out.project_id, None).await.unwrap(); }
    println!("pull: {:?}/op", t.elapsed() / n as u32);
}
