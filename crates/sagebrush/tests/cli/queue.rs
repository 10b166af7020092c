//! The run queue: a limit on runs at once, each project's runs in order, duplicates not queued
//! twice, and a killed server that goes on with its queue when it starts again.

use std::time::Duration;

use crate::harness::{Sandbox, Served, client, text, wait_until};

/// A project whose one shell stage sleeps `${seconds}` (0 unless given).
fn sleepy_project(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    let dir = sandbox.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("sagebrush.toml"),
        format!(
            "[pipeline]\nname = \"{name}\"\n[parameters]\nseconds = {{ type = \"float\", default = 0.3 }}\n\
             [[stage]]\nname = \"wait-here\"\nkind = \"shell\"\ncommand = \"sleep ${{seconds}}\"\n"
        ),
    )
    .unwrap();
    dir
}

/// Queues a run through the API, as a webhook or a script would: `(status code, answer)`.
pub(crate) fn queue(served: &Served, project: &str, seconds: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "project": project, "parameters": [["seconds", seconds]] });
    let response = client().post(format!("{}/api/v1/runs", served.url)).json(&body).send().unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

pub(crate) fn add_project(served: &Served, dir: &std::path::Path) {
    let response =
        client().post(format!("{}/api/v1/projects", served.url)).json(&serde_json::json!({ "path": dir })).send();
    assert_eq!(response.unwrap().status(), 201);
}

pub(crate) fn runs(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    sandbox.json(&["runs", "--limit", "100", "--json"]).as_array().unwrap().clone()
}

#[test]
fn ten_runs_of_two_projects_keep_the_limit_and_each_projects_order() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server", "--max-runs", "2"]);
    for name in ["alpha", "beta"] {
        add_project(&served, &sleepy_project(&sandbox, name));
    }
    for n in 0..10 {
        let (status, answer) = queue(&served, if n % 2 == 0 { "alpha" } else { "beta" }, "0.3");
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["run"]["status"], "queued", "{answer}");
    }
    wait_until(Duration::from_secs(60), "all ten runs to end", || {
        runs(&sandbox).iter().all(|r| r["status"] == "succeeded").then_some(())
    });
    let all = runs(&sandbox);
    assert_eq!(all.len(), 10);
    // Never more than two at once: at each start, count the runs that had started and not ended.
    let span = |r: &serde_json::Value| (r["started_at"].as_i64().unwrap(), r["finished_at"].as_i64().unwrap());
    for run in &all {
        let (start, _) = span(run);
        let overlapping = all.iter().filter(|other| span(other).0 <= start && span(other).1 > start).count();
        assert!(overlapping <= 2, "{overlapping} runs were running at {start}: {all:#?}");
    }
    for project in ["alpha", "beta"] {
        let mut mine: Vec<&serde_json::Value> = all.iter().filter(|r| r["project"] == project).collect();
        mine.sort_by_key(|r| r["number"].as_i64());
        let starts: Vec<i64> = mine.iter().map(|r| span(r).0).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{project} started out of order: {starts:?}");
        // One at a time: each run of a project starts after the one before it ended.
        for pair in mine.windows(2) {
            assert!(span(pair[1]).0 >= span(pair[0]).1, "{project} ran two at once: {pair:#?}");
        }
    }
}

#[test]
fn a_killed_server_goes_on_with_its_queue_and_fails_the_run_it_was_running() {
    let sandbox = Sandbox::new();
    let dir = sleepy_project(&sandbox, "slow");
    // A clean git checkout: the same commit with the same parameters is queued once.
    for args in
        [vec!["init", "-q"], vec!["add", "."], vec!["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]]
    {
        let output = std::process::Command::new("git").arg("-C").arg(&dir).args(&args).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    let served = sandbox.serve(&["server", "--max-runs", "1"]);
    add_project(&served, &dir);
    assert_eq!(queue(&served, "slow", "60.25").0, 201);
    let (status, second) = queue(&served, "slow", "0");
    assert_eq!(status, 201, "{second}");
    let (status, again) = queue(&served, "slow", "0");
    assert_eq!(status, 200, "the same commit and parameters, still queued: {again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["run"]["number"], second["run"]["number"]);
    assert_eq!(queue(&served, "slow", "0.1").0, 201);
    wait_until(Duration::from_secs(30), "run 1 to be in its stage", || {
        let shown = sandbox.json(&["show", "slow", "1", "--json"]);
        (shown["stages"][0]["status"] == "running").then_some(())
    });
    let numbers: Vec<(i64, String)> = runs(&sandbox)
        .iter()
        .map(|r| (r["number"].as_i64().unwrap(), r["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(numbers, [(3, "queued".to_owned()), (2, "queued".to_owned()), (1, "running".to_owned())]);

    served.kill();
    let served = sandbox.serve(&["server", "--max-runs", "1"]);
    wait_until(Duration::from_secs(60), "the queued runs to run after the restart", || {
        runs(&sandbox).iter().all(|r| ["succeeded", "failed"].contains(&r["status"].as_str().unwrap())).then_some(())
    });
    let first = sandbox.json(&["show", "slow", "1", "--json"]);
    assert_eq!(first["run"]["status"], "failed");
    let reason = first["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("stage `wait-here`") && reason.contains("interrupted"), "{reason}");
    for number in ["2", "3"] {
        let shown = sandbox.json(&["show", "slow", number, "--json"]);
        assert_eq!(shown["run"]["status"], "succeeded", "{shown:#}\n{}", served.output());
    }
    assert!(crate::harness::processes_with("sleep 60.25").is_empty(), "the killed run's stage is gone too");
}

#[test]
fn a_queued_run_can_be_cancelled_before_it_starts() {
    let sandbox = Sandbox::new();
    let served = sandbox.serve(&["server", "--max-runs", "1"]);
    add_project(&served, &sleepy_project(&sandbox, "later"));
    assert_eq!(queue(&served, "later", "30").0, 201);
    assert_eq!(queue(&served, "later", "0").0, 201);
    let output = sandbox.run(&["cancel", "later", "2", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let shown = sandbox.json(&["show", "later", "2", "--json"]);
    assert_eq!(shown["run"]["status"], "cancelled", "{shown:#}");
    assert!(shown["stages"].as_array().unwrap().iter().all(|s| s["status"] == "skipped"), "{shown:#}");
    let output = sandbox.run(&["cancel", "later", "1"]);
    assert!(output.status.success(), "{}", text(&output));
}
