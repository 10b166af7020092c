//! The store's write path on SQLite and Postgres: 1,000 run submissions, then 10,000 stage
//! transitions (5 stages per run, each started and finished), timed one operation at a time.
//!
//! Usage: store_bench <sqlite-file | postgres://...> [concurrency]
//! Prints one JSON line: operations per second and latency percentiles of each phase.

use std::time::{Duration, Instant};

use store::{NewRun, RunStatus, StageStatus, Store, Trigger};

const RUNS: usize = 1_000;
const STAGES: usize = 5;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1e3
}

fn summary(mut latencies: Vec<Duration>, wall: Duration) -> serde_json::Value {
    latencies.sort();
    serde_json::json!({
        "operations": latencies.len(),
        "per_second": (latencies.len() as f64 / wall.as_secs_f64()).round(),
        "p50_ms": (percentile(&latencies, 0.50) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&latencies, 0.99) * 1000.0).round() / 1000.0,
        "max_ms": (percentile(&latencies, 1.0) * 1000.0).round() / 1000.0,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let at = args.next().ok_or("usage: store_bench <sqlite-file | postgres://...> [concurrency]")?;
    let concurrency: usize = args.next().map_or(Ok(1), |c| c.parse())?;
    let store = Store::open_at(&store::Database::parse(&at)).await?;
    let stages: Vec<(String, String)> = (0..STAGES).map(|i| (format!("stage-{i}"), "shell".to_owned())).collect();
    let trigger = Trigger::manual("bench");

    // Submissions: each client submits its share of the runs, queued as the API queues them.
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..concurrency {
        let (store, stages, trigger) = (store.clone(), stages.clone(), trigger.clone());
        clients.spawn(async move {
            let mut timed = Vec::new();
            for n in (client..RUNS).step_by(concurrency) {
                let project = format!("project-{}", n % 10);
                let new = NewRun {
                    project: &project,
                    project_path: "/bench",
                    parameters: r#"{"seconds":"1"}"#,
                    secrets: "{}",
                    trigger: &trigger,
                    status: RunStatus::Queued,
                    owner: None,
                    retry_of: None,
                    retry_from: None,
                    requested_commit: None,
                    stages: &stages,
                };
                let t = Instant::now();
                let run = store.create_run(new).await.expect("create_run");
                timed.push((t.elapsed(), run.id));
            }
            timed
        });
    }
    let mut submit = Vec::new();
    let mut ids = Vec::new();
    for (latency, id) in clients.join_all().await.into_iter().flatten() {
        submit.push(latency);
        ids.push(id);
    }
    let submit_wall = started.elapsed();

    // Transitions: each run is claimed, then each stage started and finished with its outputs.
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..concurrency {
        let store = store.clone();
        let mine: Vec<i64> = ids.iter().copied().skip(client).step_by(concurrency).collect();
        clients.spawn(async move {
            let mut timed = Vec::new();
            for id in mine {
                assert!(store.claim_run(id, "bench").await.expect("claim_run"));
                for position in 0..STAGES as i64 {
                    let t = Instant::now();
                    store.start_stage(id, position).await.expect("start_stage");
                    timed.push(t.elapsed());
                    let outputs = serde_json::json!({ "digest": format!("sha256:{id}-{position}") });
                    let t = Instant::now();
                    store.finish_stage(id, position, StageStatus::Succeeded, None, &outputs).await.expect("finish");
                    timed.push(t.elapsed());
                }
                store.finish_run(id, RunStatus::Succeeded, None).await.expect("finish_run");
            }
            timed
        });
    }
    let transitions: Vec<Duration> = clients.join_all().await.into_iter().flatten().collect();
    let transition_wall = started.elapsed();

    let kind = match store.kind() {
        store::DatabaseKind::Sqlite => "sqlite",
        store::DatabaseKind::Postgres => "postgres",
    };
    let report = serde_json::json!({
        "database": kind,
        "concurrency": concurrency,
        "submissions": summary(submit, submit_wall),
        "transitions": summary(transitions, transition_wall),
    });
    println!("{report}");
    Ok(())
}
