//! The champion gate: the run's test endpoint against what prod serves, on the same held-out rows.

use crate::harness::{Sandbox, text};

/// The iris example with a champion gate between the smoke test and prod.
fn project(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.project("iris", "iris");
    let file = dir.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let prod = "[[stage]]\nname = \"deploy-prod\"";
    let gate = "[[stage]]\nname = \"champion\"\nkind = \"champion\"\nendpoint = \"iris-prod\"\ncandidate = \"iris-test\"\n\
                data = \"data/holdout.csv\"\nmargin = 0.02\n\n";
    // Every third row of all three classes (the example's validation rows have no virginica).
    let train = std::fs::read_to_string(dir.join("data/train.csv")).unwrap();
    let holdout: String = train.lines().step_by(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("data/holdout.csv"), holdout).unwrap();
    std::fs::write(&file, pipeline.replacen(prod, &format!("{gate}{prod}"), 1)).unwrap();
    dir
}

fn champion_stage(shown: &serde_json::Value) -> serde_json::Value {
    shown["stages"].as_array().unwrap().iter().find(|s| s["name"] == "champion").cloned().unwrap()
}

#[test]
fn a_worse_candidate_is_stopped_with_both_scores_and_a_better_one_passes() {
    let sandbox = Sandbox::new();
    let dir = project(&sandbox);
    let dir = dir.to_str().unwrap();
    let _served = sandbox.serve(&["server"]);

    // No champion yet: it passes and says so.
    let output = sandbox.run(&["run", dir]);
    assert!(output.status.success(), "{}", text(&output));
    let first = champion_stage(&sandbox.json(&["show", "iris", "1", "--json"]));
    assert_eq!(first["outputs"]["champion"], serde_json::Value::Null, "{first:#}");
    assert!(first["outputs"]["verdict"].as_str().unwrap().starts_with("no champion"), "{first:#}");
    let champion_accuracy = first["outputs"]["candidate"].as_f64().unwrap();
    assert!(champion_accuracy > 0.9, "{first:#}");

    // Two leaves only separate one class of three; the other gates are lowered so this one decides.
    let output = sandbox.run(&[
        "run",
        dir,
        "-p",
        "max_leaf_nodes=2",
        "-p",
        "min_train_accuracy=0",
        "-p",
        "min_smoke_accuracy=0",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = sandbox.json(&["show", "iris", "2", "--json"]);
    let worse = champion_stage(&shown);
    assert_eq!(worse["status"], "failed", "{worse:#}");
    let (candidate, champion) =
        (worse["outputs"]["candidate"].as_f64().unwrap(), worse["outputs"]["champion"].as_f64().unwrap());
    assert!(candidate < champion - 0.02, "{worse:#}");
    assert_eq!(champion, champion_accuracy, "the champion answered the same rows as when it was the candidate");
    assert_eq!(worse["outputs"]["champion_model"], "iris v1");
    let reason = worse["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("{candidate:.4}")) && reason.contains(&format!("{champion:.4}")), "{reason}");
    let prod = shown["stages"].as_array().unwrap().iter().find(|s| s["name"] == "deploy-prod").unwrap();
    assert_eq!(prod["status"], "skipped");

    // As good as the champion (the same settings): it passes and goes to prod.
    let output = sandbox.run(&["run", dir]);
    assert!(output.status.success(), "{}", text(&output));
    let passed = champion_stage(&sandbox.json(&["show", "iris", "3", "--json"]));
    assert_eq!(passed["status"], "succeeded");
    assert!(passed["outputs"]["verdict"].as_str().unwrap().contains("holds against the champion's"), "{passed:#}");
}
