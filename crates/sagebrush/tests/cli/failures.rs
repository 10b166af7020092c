//! A failed training job, smoke test or gate stops the run with its reason, and prod keeps serving what it served.

use crate::harness::{Sandbox, Served, endpoint, payload, text};

fn prod_unchanged(sandbox: &Sandbox, served: &Served) {
    assert_eq!(endpoint(sandbox, "iris-prod")["model_version"], 1);
    let response = served.invoke("iris-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap().lines().count(), 29);
}

fn failed_run(sandbox: &Sandbox, args: &[&str], number: i64) -> serde_json::Value {
    let output = sandbox.run(args);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = sandbox.json(&["show", "iris", &number.to_string(), "--json"]);
    assert_eq!(shown["run"]["status"], "failed", "{shown:#}");
    // `runs` shows the same reason.
    let runs = sandbox.json(&["runs", "iris", "--json"]);
    let listed = runs.as_array().unwrap().iter().find(|r| r["number"] == number).unwrap();
    assert_eq!(listed["reason"], shown["run"]["reason"]);
    shown
}

fn stage<'a>(shown: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    shown["stages"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

#[test]
fn failures_stop_the_run_and_leave_prod_alone() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["up", dir]);
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded", "{}", served.output());

    // A training failure: a hyperparameter the algorithm rejects.
    let file = project.join("sagebrush.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        original.replace(
            r#"hyperparameters = { max_leaf_nodes = "${max_leaf_nodes}" }"#,
            r#"hyperparameters = { max_leaf_nodes = "${max_leaf_nodes}", max_depth = "deep" }"#,
        ),
    )
    .unwrap();
    let shown = failed_run(&sandbox, &["run", dir], 2);
    let reason = shown["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("stage `train` failed") && reason.contains("max_depth"), "{reason}");
    assert_eq!(stage(&shown, "train")["status"], "failed");
    assert_eq!(stage(&shown, "deploy-prod")["status"], "skipped");
    let logs = String::from_utf8_lossy(&sandbox.run(&["logs", "iris", "2", "--stage", "train"]).stdout).into_owned();
    assert!(logs.contains("Failed"), "{logs}");
    std::fs::write(&file, &original).unwrap();
    prod_unchanged(&sandbox, &served);

    // A failed gate: two leaves cannot separate three classes.
    let shown = failed_run(&sandbox, &["run", dir, "-p", "max_leaf_nodes=2"], 3);
    let reason = shown["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("stage `gate` failed") && reason.contains("train:accuracy"), "{reason}");
    assert_eq!(stage(&shown, "register")["status"], "skipped");
    prod_unchanged(&sandbox, &served);

    // A failed smoke test: the test endpoint answers, but not the labels the data expects.
    std::fs::write(project.join("data/mislabeled.csv"), "virginica,5.0,3.5,1.3,0.3\nsetosa,5.8,2.7,5.1,1.9\n").unwrap();
    let shown = failed_run(&sandbox, &["run", dir, "-p", "smoke_data=data/mislabeled.csv"], 4);
    let reason = shown["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("stage `smoke-test` failed") && reason.contains("below the required 0.9"), "{reason}");
    assert_eq!(stage(&shown, "smoke-test")["outputs"]["accuracy"], 0.0);
    assert_eq!(stage(&shown, "deploy-prod")["status"], "skipped");
    prod_unchanged(&sandbox, &served);
}
