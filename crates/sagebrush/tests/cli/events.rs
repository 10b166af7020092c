//! Events: every change of a run, its stages, its model version and its endpoints, in order, as
//! a page and as a live stream of server-sent events that resumes where it left off.

use std::io::BufRead;
use std::time::{Duration, Instant};

use crate::harness::{Sandbox, client, text};

/// Reads server-sent events from `stream` until `done` says so: each event's `(id, kind, event)`.
fn read_events(
    stream: reqwest::blocking::Response,
    limit: Duration,
    done: impl Fn(&str, &serde_json::Value) -> bool,
) -> Vec<(i64, String, serde_json::Value)> {
    let deadline = Instant::now() + limit;
    let mut lines = std::io::BufReader::new(stream).lines();
    let (mut events, mut id, mut kind) = (Vec::new(), 0, String::new());
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.parse().unwrap();
        } else if let Some(value) = line.strip_prefix("event: ") {
            kind = value.to_owned();
        } else if let Some(value) = line.strip_prefix("data: ") {
            let event: serde_json::Value = serde_json::from_str(value).unwrap();
            let finished = done(&kind, &event);
            events.push((id, kind.clone(), event));
            if finished {
                return events;
            }
        }
    }
    panic!("the stream did not bring the awaited event within {limit:?}: {events:?}");
}

#[test]
fn a_runs_changes_stream_in_order_and_a_follower_resumes_where_it_left_off() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["server"]);
    let subscribe = |resume: Option<i64>| {
        let mut request = client()
            .get(format!("{}/api/v1/events?project=iris", served.url))
            .header("accept", "text/event-stream")
            .timeout(Duration::from_secs(120));
        if let Some(id) = resume {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        response
    };
    let stream = subscribe(None);
    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let finished = |kind: &str, event: &serde_json::Value| kind == "run_finished" && event["data"]["number"] == 1;
    let events = read_events(stream, Duration::from_secs(60), finished);

    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_queued"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
    assert_eq!(events.last().unwrap().2["data"]["status"], "succeeded");
    assert!(kinds.contains(&"model_registered"), "{kinds:?}");
    let ids: Vec<i64> = events.iter().map(|(id, _, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    // Each stage starts, then finishes, in the pipeline's order.
    let stage_events: Vec<(String, String)> = events
        .iter()
        .filter(|(_, kind, _)| kind.starts_with("stage_"))
        .map(|(_, kind, e)| (kind.clone(), e["data"]["stage"].as_str().unwrap().to_owned()))
        .collect();
    let stages = ["checkout", "train", "gate", "register", "deploy-test", "smoke-test", "deploy-prod"];
    let expected: Vec<(String, String)> = stages
        .iter()
        .flat_map(|s| [("stage_started".to_owned(), (*s).to_owned()), ("stage_finished".to_owned(), (*s).to_owned())])
        .collect();
    assert_eq!(stage_events, expected);

    // The page lists the same, and `events` prints it; an endpoint change is there too (not a project's).
    let page: serde_json::Value =
        client().get(format!("{}/api/v1/events?project=iris", served.url)).send().unwrap().json().unwrap();
    let page_ids: Vec<i64> = page["events"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(page_ids, ids);
    let all = sandbox.json(&["events", "--json"]);
    let endpoint_updates = all.as_array().unwrap().iter().filter(|e| e["kind"] == "endpoint_updated").count();
    assert!(endpoint_updates >= 2, "deploy-test and deploy-prod: {all}");

    // A follower that saw up to the model resumes after it, with nothing twice.
    let registered = events.iter().find(|(_, kind, _)| kind == "model_registered").unwrap().0;
    let resumed = read_events(subscribe(Some(registered)), Duration::from_secs(30), finished);
    let resumed_ids: Vec<i64> = resumed.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(resumed_ids, ids.into_iter().filter(|id| *id > registered).collect::<Vec<_>>());
}

#[test]
fn logs_follow_a_running_stage_through_the_server_as_it_writes() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("talky");
    std::fs::create_dir_all(&dir).unwrap();
    // The second line waits for a file the test writes, so the log is read while the run goes on.
    let gate = sandbox.dir.path().join("go-on");
    std::fs::write(
        dir.join("sagebrush.toml"),
        format!(
            "[pipeline]\nname = \"talky\"\n[[stage]]\nname = \"talk\"\nkind = \"shell\"\n\
             command = \"echo first line; while [ ! -e {} ]; do sleep 0.05; done; echo second line\"\n",
            gate.display()
        ),
    )
    .unwrap();
    let _served = sandbox.serve(&["server"]);
    let run = sandbox.command(&["run", dir.to_str().unwrap()]).spawn().unwrap();
    crate::harness::wait_until(Duration::from_secs(30), "the run to start", || {
        let output = sandbox.run(&["show", "talky", "1", "--json"]);
        output.status.success().then_some(())
    });
    let mut follower =
        sandbox.command(&["logs", "talky", "1", "-f"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l == "first line") {
        seen.push(lines.next().expect("the follower ended early").unwrap());
    }
    // The first line arrived while the stage still waits: followed live, not read at the end.
    let shown = sandbox.json(&["show", "talky", "1", "--json"]);
    assert_eq!(shown["run"]["status"], "running", "{shown}");
    std::fs::write(&gate, "").unwrap();
    for line in lines {
        seen.push(line.unwrap());
    }
    assert!(follower.wait().unwrap().success(), "{seen:?}");
    assert!(seen.iter().any(|l| l == "second line"), "followed to the end: {seen:?}");
    assert_eq!(seen.iter().filter(|l| l.as_str() == "first line").count(), 1, "nothing twice: {seen:?}");
    assert!(run.wait_with_output().unwrap().status.success());
}
