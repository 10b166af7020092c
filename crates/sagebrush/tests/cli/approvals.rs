//! The approval stage through a real server: a run waits with its evidence, survives the server
//! killed with -9, and goes on to prod once approved; rejected, prod keeps what it serves.

use std::time::Duration;

use crate::harness::{Sandbox, client, text, wait_until};

/// The iris example with an approval between the smoke test and prod.
pub(crate) fn approving_project(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.project("iris", "iris");
    let file = dir.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let prod = "[[stage]]\nname = \"deploy-prod\"";
    assert!(pipeline.contains(prod), "{pipeline}");
    let approving =
        pipeline.replacen(prod, &format!("[[stage]]\nname = \"approve\"\nkind = \"approval\"\n\n{prod}"), 1);
    std::fs::write(&file, approving).unwrap();
    dir
}

fn prod_version(sandbox: &Sandbox) -> serde_json::Value {
    let endpoints = sandbox.json(&["endpoints", "--json"]);
    let prod = endpoints.as_array().unwrap().iter().find(|e| e["name"] == "iris-prod").cloned();
    prod.map_or(serde_json::Value::Null, |e| e["model_version"].clone())
}

#[test]
fn a_waiting_run_survives_a_killed_server_goes_to_prod_when_approved_and_stops_when_rejected() {
    let sandbox = Sandbox::new();
    let dir = approving_project(&sandbox);
    let dir = dir.to_str().unwrap();
    let served = sandbox.serve(&["server"]);

    // The run stops at the approval: exit 4, the evidence on the run, the version pending.
    let output = sandbox.run(&["run", dir]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(text(&output).contains("sagebrush approve iris 1 --reason"), "{}", text(&output));
    let shown = sandbox.json(&["show", "iris", "1", "--json"]);
    assert_eq!(shown["run"]["status"], "waiting", "{shown:#}");
    let approval = &shown["approvals"][0];
    assert_eq!((approval["model_group"].as_str(), approval["model_version"].as_i64()), (Some("iris"), Some(1)));
    assert_eq!(approval["status"], "pending");
    assert!(approval["evidence"]["smoke_test"]["accuracy"].as_f64().unwrap() > 0.9, "{approval:#}");
    assert!(approval["evidence"]["metrics"].is_object(), "{approval:#}");
    assert_eq!(sandbox.json(&["models", "--json"])[0]["approval_status"], "PendingManualApproval");
    assert_eq!(prod_version(&sandbox), serde_json::Value::Null, "nothing reached prod");

    // A reason is required, and only a waiting run can be decided.
    let output = sandbox.run(&["approve", "iris", "1", "--reason", " "]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));

    // kill -9 and a new server: the run still waits.
    served.kill();
    let served = sandbox.serve(&["server"]);
    let shown = sandbox.json(&["show", "iris", "1", "--json"]);
    assert_eq!(shown["run"]["status"], "waiting", "after kill -9: {shown:#}\n{}", served.output());

    let output = sandbox.run(&["approve", "iris", "1", "--reason", "smoke test 0.97, as before"]);
    assert!(output.status.success(), "{}", text(&output));
    let shown = wait_until(Duration::from_secs(60), "the approved run to end", || {
        let shown = sandbox.json(&["show", "iris", "1", "--json"]);
        shown["run"]["finished_at"].is_i64().then_some(shown)
    });
    assert_eq!(shown["run"]["status"], "succeeded", "{shown:#}\n{}", served.output());
    let approval = &shown["approvals"][0];
    assert_eq!((approval["status"].as_str(), approval["decided_by"].as_str()), (Some("approved"), Some("local")));
    assert_eq!(approval["reason"], "smoke test 0.97, as before");
    assert_eq!(sandbox.json(&["models", "--json"])[0]["approval_status"], "Approved");
    assert_eq!(prod_version(&sandbox), 1);
    let output = sandbox.run(&["approve", "iris", "1", "--reason", "again"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("not waiting for an approval; it is succeeded"), "{}", text(&output));

    // A second run, rejected: it fails before prod, and prod keeps version 1.
    let output = sandbox.run(&["run", dir]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    let output = sandbox.run(&["reject", "iris", "2", "--reason", "not this week", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["run"]["status"], "failed");
    assert_eq!(shown["run"]["reason"], "stage `approve` failed: rejected by local: not this week");
    let prod_stage = shown["stages"].as_array().unwrap().iter().find(|s| s["name"] == "deploy-prod").unwrap();
    assert_eq!(prod_stage["status"], "skipped");
    let versions = sandbox.json(&["models", "--json"]);
    let version_2 = versions.as_array().unwrap().iter().find(|v| v["version"] == 2).unwrap();
    assert_eq!(version_2["approval_status"], "Rejected");
    assert_eq!(prod_version(&sandbox), 1, "prod keeps serving version 1");
    let response = client()
        .post(format!("{}/endpoints/iris-prod/invocations", served.url))
        .header("content-type", "text/csv")
        .body("5.1,3.5,1.4,0.2\n")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    // Both decisions are in the audit, with who made them.
    let audit = sandbox.json(&["audit", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.ends_with("/approve") || a.ends_with("/reject"))
        .collect();
    assert!(actions.contains(&"POST /api/v1/runs/iris/1/approve"), "{audit:#}");
    assert!(actions.contains(&"POST /api/v1/runs/iris/2/reject"), "{audit:#}");
    let promoted = audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "run iris #1" && e["action"] == "promote iris v1 to iris-prod");
    assert!(promoted, "the run's promotion is in the audit: {audit:#}");
}

#[test]
fn with_no_server_an_approved_run_goes_on_in_the_approving_process() {
    let sandbox = Sandbox::new();
    let dir = approving_project(&sandbox);
    let output = sandbox.run(&["run", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    let output = sandbox.run(&["approve", "iris", "--reason", "fine", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let ended: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(ended["run"]["status"], "succeeded", "{ended:#}");
    assert_eq!(prod_version(&sandbox), 1);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `history iris-prod --at <ms> --json`: (version, run, who approved) of each variant served then.
fn served_at(sandbox: &Sandbox, at: i64) -> Vec<(i64, Option<i64>, Option<String>)> {
    let served = sandbox.json(&["history", "iris-prod", "--at", &at.to_string(), "--json"]);
    let stretches = served.as_array().unwrap();
    assert!(stretches.len() <= 1, "one stretch covers a time: {served:#}");
    stretches
        .iter()
        .flat_map(|s| s["variants"].as_array().unwrap().clone())
        .map(|v| {
            (v["model_version"].as_i64().unwrap(), v["run"].as_i64(), v["approved_by"].as_str().map(str::to_owned))
        })
        .collect()
}

#[test]
fn history_answers_what_served_at_a_time_across_three_promotions_and_a_rollback() {
    let sandbox = Sandbox::new();
    let dir = approving_project(&sandbox);
    let dir = dir.to_str().unwrap();
    let served = sandbox.serve_under(&["env", "SAGEBRUSH_LOG=info"], &["server"]);
    let before = now_ms();
    let mut after = Vec::new();
    for number in 1..=3 {
        let output = sandbox.run(&["run", dir]);
        assert_eq!(output.status.code(), Some(4), "{}", text(&output));
        let reason = format!("release {number}");
        let output = sandbox.run(&["approve", "iris", &number.to_string(), "--reason", &reason]);
        assert!(output.status.success(), "{}", text(&output));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let shown = loop {
            let shown = sandbox.json(&["show", "iris", &number.to_string(), "--json"]);
            if shown["run"]["finished_at"].is_i64() {
                break shown;
            }
            assert!(std::time::Instant::now() < deadline, "run {number} did not end: {shown:#}\n{}", served.output());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(shown["run"]["status"], "succeeded", "{shown:#}\n{}", served.output());
        after.push(now_ms());
    }
    // Back to version 1 by hand, as after a bad release.
    let output = sandbox.run(&["deploy", "iris-prod", "iris", "--model-version", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let rolled_back = now_ms();

    assert_eq!(served_at(&sandbox, before), [], "nothing served before the first promotion");
    assert_eq!(served_at(&sandbox, after[0]), [(1, Some(1), Some("local".to_owned()))]);
    assert_eq!(served_at(&sandbox, after[1]).first().map(|v| v.0), Some(2));
    assert_eq!(served_at(&sandbox, after[2]), [(3, Some(3), Some("local".to_owned()))]);
    assert_eq!(served_at(&sandbox, rolled_back).first().map(|v| v.0), Some(1));
    let all = sandbox.json(&["history", "iris-prod", "--json"]);
    let versions: Vec<i64> =
        all.as_array().unwrap().iter().filter_map(|s| s["variants"][0]["model_version"].as_i64()).collect();
    assert_eq!(versions, [1, 2, 3, 1], "{all:#}");
    assert_eq!(all[0]["variants"][0]["approval_reason"], "release 1");
    let table = sandbox.run(&["history", "iris-prod", "--at", "2000-01-01T00:00:00Z"]);
    assert!(table.status.success() && text(&table).contains("served nothing"), "{}", text(&table));
    let unknown = sandbox.run(&["history", "no-such-endpoint"]);
    assert!(text(&unknown).contains("no endpoint no-such-endpoint"), "{}", text(&unknown));
}
