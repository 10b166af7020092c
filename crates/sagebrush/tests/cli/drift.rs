//! Drift through a real server: requests drawn like the training data start nothing, shifted ones
//! start one retraining run, and the PSI of each feature is what numpy computes on the same rows.

use std::time::Duration;

use crate::harness::{Sandbox, Served, repo_root, text, wait_until};

const WINDOW: usize = 150;

/// The iris features of the training channel, as request rows, with `shift` added to the third.
fn training_rows(sandbox_project: &std::path::Path, shift: f64) -> Vec<String> {
    let train = std::fs::read_to_string(sandbox_project.join("data/train.csv")).unwrap();
    train
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut features: Vec<f64> = line.split(',').skip(1).map(|f| f.parse().unwrap()).collect();
            features[2] += shift;
            features.iter().map(f64::to_string).collect::<Vec<_>>().join(",")
        })
        .collect()
}

/// Sends the rows ten to a request, and waits until the capture holds `total` rows.
fn send(sandbox: &Sandbox, served: &Served, rows: &[String], total: usize) {
    for chunk in rows.chunks(10) {
        let body = chunk.join("\n") + "\n";
        let response = served.invoke("iris-prod", "text/csv", body);
        assert_eq!(response.status(), 200);
    }
    let dir = sandbox.home.join("capture/iris-prod");
    wait_until(Duration::from_secs(30), &format!("{total} captured rows"), || {
        let lines: usize = std::fs::read_dir(&dir)
            .ok()?
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().count())
            .sum();
        (lines * 10 >= total).then_some(())
    });
}

/// `sagebrush drift` and the numpy reference on the same files: each feature's PSI, both ways.
fn psi_both_ways(sandbox: &Sandbox, project: &std::path::Path, svg: &std::path::Path) -> (Vec<f64>, Vec<f64>) {
    let window = WINDOW.to_string();
    let ours = sandbox.json(&["drift", "iris-prod", "--window", &window, "--svg", svg.to_str().unwrap(), "--json"]);
    assert_eq!(ours["rows"], WINDOW, "{ours:#}");
    assert_eq!((ours["model_group"].as_str(), ours["skipped"].as_u64()), (Some("iris"), Some(0)), "{ours:#}");
    let script = repo_root().join("tests/drift/psi_numpy.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args(["--train", project.join("data/train.csv").to_str().unwrap()])
        .args(["--capture", sandbox.home.join("capture/iris-prod").to_str().unwrap()])
        .args(["--window", &window])
        .output()
        .unwrap();
    assert!(output.status.success(), "numpy reference: {}", text(&output));
    let theirs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(theirs["rows"], WINDOW);
    let ours = ours["features"].as_array().unwrap().iter().map(|f| f["psi"].as_f64().unwrap()).collect();
    let theirs = theirs["psi"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    (ours, theirs)
}

fn close(ours: &[f64], numpy: &[f64]) {
    assert_eq!(ours.len(), 4, "{ours:?}");
    assert_eq!(ours.len(), numpy.len(), "{ours:?} {numpy:?}");
    for (a, b) in ours.iter().zip(numpy) {
        assert!((a - b).abs() < 1e-9, "sagebrush {ours:?} against numpy {numpy:?}");
    }
}

#[test]
fn shifted_requests_start_one_run_unshifted_ones_none_and_psi_matches_numpy() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let file = project.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let prod = "endpoint = \"iris-prod\"\n";
    assert!(pipeline.ends_with(prod), "{pipeline}");
    let drift = format!("\n[triggers.drift]\nendpoint = \"iris-prod\"\nwindow = {WINDOW}\nevery = \"1s\"\n");
    std::fs::write(&file, format!("{pipeline}capture_percent = 100\n{drift}")).unwrap();
    let served = sandbox.serve_under(&["env", "SAGEBRUSH_LOG=info,engine::triggers=debug"], &["server"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());
    let shown = sandbox.json(&["show", "iris", "1", "--json"]);
    let train = shown["stages"].as_array().unwrap().iter().find(|s| s["kind"] == "train").unwrap();
    assert_eq!(train["outputs"]["baseline"]["rows"], 150, "{train:#}");

    // Before any request: nothing to compare, and the trigger waits for a full window.
    let empty = sandbox.json(&["drift", "iris-prod", "--json"]);
    assert_eq!(empty["rows"], 0, "{empty:#}");
    assert_eq!(empty["features"], serde_json::json!([]), "no PSI from zero rows: {empty:#}");
    let told = sandbox.run(&["drift", "iris-prod"]);
    assert!(told.status.success() && text(&told).contains("no captured requests yet"), "{}", text(&told));
    assert!(!text(&told).contains("DRIFTED"), "no table for nothing: {}", text(&told));

    // The training rows themselves: no drift, and the trigger says so and starts nothing.
    let rows = training_rows(&project, 0.0);
    assert_eq!(rows.len(), WINDOW);
    send(&sandbox, &served, &rows, WINDOW);
    let (ours, numpy) = psi_both_ways(&sandbox, &project, &sandbox.dir.path().join("same.svg"));
    close(&ours, &numpy);
    assert!(ours.iter().all(|&psi| psi == 0.0), "{ours:?}");
    let quiet = "iris: iris-prod has not drifted: largest PSI 0.0000 over 150 requests";
    wait_until(Duration::from_secs(30), "a drift check", || served.output().contains(quiet).then_some(()));
    assert_eq!(sandbox.json(&["runs", "iris", "--json"]).as_array().unwrap().len(), 1);

    // Petal length shifted by 2 cm: that feature drifts, and one run starts.
    send(&sandbox, &served, &training_rows(&project, 2.0), 2 * WINDOW);
    let svg = sandbox.dir.path().join("drift.svg");
    let (ours, numpy) = psi_both_ways(&sandbox, &project, &svg);
    close(&ours, &numpy);
    assert!(ours[2] > 1.0, "{ours:?}");
    assert_eq!((ours[0], ours[1], ours[3]), (0.0, 0.0, 0.0), "{ours:?}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg"), "{drawn}");
    assert_eq!(drawn.matches("class=\"feature\"").count(), 4, "{drawn}");
    assert_eq!(drawn.matches("class=\"captured\"").count(), drawn.matches("class=\"training\"").count());
    assert!(drawn.contains("feature 2: PSI") && drawn.contains("(drifted)"), "{drawn}");

    let triggered = wait_until(Duration::from_secs(60), "a run started by drift", || {
        let runs = sandbox.json(&["runs", "iris", "--json"]);
        runs.as_array().unwrap().iter().find(|r| r["trigger"] == "drift").cloned()
    });
    let detail = triggered["trigger_detail"].as_str().unwrap();
    assert!(detail.starts_with("feature 2 of iris-prod drifted: PSI"), "{detail}");
    let ended = sandbox.wait_for_run("iris", triggered["number"].as_i64().unwrap());
    assert_eq!(ended["run"]["status"], "succeeded", "{ended:#}\n{}", served.output());
    // The shift was answered once: checks after it count only the requests since, fewer than a
    // window (none, or the last of the shifted ones if the trigger fired while they were still sent).
    let fresh = |output: String| {
        output.lines().filter(|l| l.contains("iris: iris-prod: ") && l.contains(" of 150 requests to compare")).count()
    };
    let before = fresh(served.output());
    wait_until(Duration::from_secs(30), "a drift check after the run", || {
        (fresh(served.output()) > before).then_some(())
    });
    let drift_runs = sandbox.json(&["runs", "iris", "--json"]);
    let count = drift_runs.as_array().unwrap().iter().filter(|r| r["trigger"] == "drift").count();
    assert_eq!(count, 1, "{drift_runs:#}");
}

#[test]
fn drift_needs_an_endpoint_with_a_model_and_a_sensible_window() {
    let sandbox = Sandbox::new();
    let unknown = sandbox.run(&["drift", "nowhere"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(text(&unknown).contains("no endpoint nowhere"), "{}", text(&unknown));
    let project = sandbox.project("iris", "iris");
    assert!(sandbox.run(&["run", project.to_str().unwrap()]).status.success());
    let zero = sandbox.run(&["drift", "iris-prod", "--window", "0"]);
    assert!(text(&zero).contains("window is 1 to"), "{}", text(&zero));
    let negative = sandbox.run(&["drift", "iris-prod", "--threshold=0"]);
    assert!(text(&negative).contains("threshold is a positive number"), "{}", text(&negative));
}
