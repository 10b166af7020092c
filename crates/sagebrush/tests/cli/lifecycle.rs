//! The whole loop: `up` reaches a smoke-tested prod endpoint, a second run updates it in place, runs do not interfere.

use crate::harness::{Sandbox, SteadyLoad, endpoint, payload, text};

#[test]
fn up_reaches_prod_and_a_second_run_updates_it_in_place() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["up", project.to_str().unwrap()]);
    let first = sandbox.wait_for_run("iris", 1);
    assert_eq!(first["run"]["status"], "succeeded", "{first:#}\n{}", served.output());

    let response = served.invoke("iris-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amzn-invoked-production-variant"], "AllTraffic");
    let body = response.text().unwrap();
    let labels: Vec<&str> = body.lines().collect();
    assert_eq!(labels.len(), 29, "one label per payload row: {body}");
    assert!(labels.iter().all(|l| ["setosa", "versicolor", "virginica"].contains(l)), "{body}");
    // The payload's first rows are setosa in the workshop's data.
    assert_eq!(labels[0], "setosa");
    assert_eq!(endpoint(&sandbox, "iris-prod")["model_version"], 1);

    // A steady load on prod while the second run replaces its model: not one request may fail.
    let load = SteadyLoad::start(&served, "iris-prod");
    let second = sandbox.run(&["run", project.to_str().unwrap(), "-p", "max_leaf_nodes=3"]);
    let (ok, failed) = load.finish();
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(failed, 0, "requests failed during the update ({ok} succeeded)");
    assert!(ok > 0);

    let prod = endpoint(&sandbox, "iris-prod");
    assert_eq!(prod["model_version"], 2, "{prod:#}");
    let models = sandbox.json(&["models", "iris", "--json"]);
    let v2 = models.as_array().unwrap().iter().find(|m| m["version"] == 2).unwrap();
    assert_eq!(v2["lineage"]["hyperparameters"]["max_leaf_nodes"], "3");
    assert_eq!(v2["lineage"]["run"], 2);
    assert!(v2["lineage"]["data"]["training"].as_str().is_some_and(|s| s.len() == 64), "{v2:#}");
    let response = served.invoke("iris-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap().lines().count(), 29);

    // The artifact sits where SageMaker would put it, with the recorded sha256.
    let job = &v2["lineage"]["training_job"];
    assert_eq!(job, "iris-2");
    let artifact = sandbox.home.join("artifacts/iris-2/output/model.tar.gz");
    assert!(artifact.is_file());
}

#[test]
fn bad_requests_get_sagemaker_errors() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let served = sandbox.serve(&["up", project.to_str().unwrap()]);
    assert_eq!(sandbox.wait_for_run("iris", 1)["run"]["status"], "succeeded");

    // What the model refuses is SageMaker's ModelError (424), with the model's status and words.
    let model_error = |response: reqwest::blocking::Response| {
        assert_eq!(response.status(), 424);
        assert_eq!(response.headers()["x-amzn-errortype"], "ModelError");
        response.json::<serde_json::Value>().unwrap()
    };
    let refused = model_error(served.invoke("iris-prod", "application/json", "{}"));
    assert_eq!(refused["OriginalStatusCode"], 415, "{refused:#}");
    assert!(refused["OriginalMessage"].as_str().unwrap().contains("text/csv"), "{refused:#}");
    assert!(
        refused["message"].as_str().unwrap().starts_with("Received client error (415) from primary"),
        "{refused:#}"
    );
    let refused = model_error(served.invoke("iris-prod", "text/csv", "5.1,3.5,1.4,0.2\n5.1,oops,1.4,0.2\n"));
    assert_eq!(refused["OriginalStatusCode"], 400, "{refused:#}");
    let message = refused["OriginalMessage"].as_str().unwrap();
    assert!(message.contains("row 2, column 2") && message.contains("oops"), "{message}");

    let response = served.invoke("iris-prod", "text/csv", vec![b'1'; 7 * 1024 * 1024]);
    assert_eq!(response.status(), 413);

    let response = served.invoke("nope", "text/csv", "5.1,3.5,1.4,0.2\n");
    assert_eq!(response.status(), 400, "SageMaker's answer for an unknown endpoint");
    assert_eq!(response.headers()["x-amzn-errortype"], "ValidationError");

    // boto3 (from PyPI, with moto) raises each as the exception class its users catch.
    let script = crate::harness::repo_root().join("tests/runtime/boto3_errors.py");
    let checked = std::process::Command::new("python3").arg(script).args([&served.url, "iris-prod"]).output().unwrap();
    assert!(checked.status.success() && text(&checked).contains("ok"), "{}", text(&checked));
}

#[test]
fn two_projects_run_at_once_without_interfering() {
    let sandbox = Sandbox::new();
    let a = sandbox.project("iris", "alpha");
    let b = sandbox.project("iris", "beta");
    let spawn = |project: &std::path::Path, leaves: &str| {
        sandbox
            .command(&["run", project.to_str().unwrap(), "-p", &format!("max_leaf_nodes={leaves}"), "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(&a, "4"), spawn(&b, "6"));
    let (first, second) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    for (project, leaves) in [("alpha", "4"), ("beta", "6")] {
        let runs = sandbox.json(&["runs", project, "--json"]);
        assert_eq!(runs.as_array().unwrap().len(), 1);
        assert_eq!(runs[0]["number"], 1);
        let models = sandbox.json(&["models", project, "--json"]);
        assert_eq!(models[0]["lineage"]["hyperparameters"]["max_leaf_nodes"], leaves);
        assert_eq!(models[0]["lineage"]["training_job"], format!("{project}-1"));
        assert_eq!(endpoint(&sandbox, &format!("{project}-prod"))["model_group"], project);
    }
}

#[test]
fn logs_cancel_and_retry_from_a_stage() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let first = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));

    let logs = sandbox.run(&["logs", "iris", "1", "--stage", "train"]);
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(logs.contains("train_accuracy="), "{logs}");
    assert!(logs.contains("Completed"), "{logs}");

    let retried = sandbox.run(&["retry", "iris", "1", "--from", "deploy-test", "--json"]);
    assert!(retried.status.success(), "{}", text(&retried));
    let shown: serde_json::Value = serde_json::from_slice(&retried.stdout).unwrap();
    let statuses: Vec<(&str, &str)> = shown["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses[..4],
        [("checkout", "reused"), ("train", "reused"), ("gate", "reused"), ("register", "reused")]
    );
    assert_eq!(statuses[4], ("deploy-test", "succeeded"));
    assert_eq!(shown["run"]["retry_of"], 1);
    // Reused stages do not train again: still one model version.
    assert_eq!(sandbox.json(&["models", "--json"]).as_array().unwrap().len(), 1);

    let unknown = sandbox.run(&["retry", "iris", "1", "--from", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("deploy-prod"));

    let ended = sandbox.run(&["cancel", "iris", "1"]);
    assert_eq!(ended.status.code(), Some(2), "{}", text(&ended));
    assert!(String::from_utf8_lossy(&ended.stderr).contains("already ended"));
}
