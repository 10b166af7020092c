//! The built-in algorithms under the SageMaker training contract, on a real /opt/ml layout in a temp dir.

use std::path::Path;

use builtin::{Model, Task};

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/iris/data/train.csv");

fn opt_ml(hyperparameters: &str, training: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("input/config")).unwrap();
    std::fs::create_dir_all(dir.path().join("input/data/training")).unwrap();
    std::fs::write(dir.path().join("input/config/hyperparameters.json"), hyperparameters).unwrap();
    std::fs::write(dir.path().join("input/data/training/train.csv"), training).unwrap();
    dir
}

fn iris() -> String {
    std::fs::read_to_string(IRIS).unwrap()
}

fn train(dir: &Path) -> (Result<builtin::TrainReport, builtin::Error>, String) {
    let mut log = Vec::new();
    let result = builtin::train(dir, &mut log);
    (result, String::from_utf8(log).unwrap())
}

fn predict(model: &Model, body: &str) -> Result<Vec<String>, builtin::Error> {
    let mut out = Vec::new();
    model.predict_csv(body.as_bytes(), &mut out)?;
    Ok(String::from_utf8(out).unwrap().lines().map(str::to_owned).collect())
}

#[test]
fn a_tree_trains_on_iris_and_serves_from_its_model_file() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree", "sagemaker_program": "x"}"#, &iris());
    let (report, log) = train(dir.path());
    let report = report.unwrap();
    assert!(report.train_accuracy.unwrap() >= 0.95, "{log}");
    assert!(log.contains("train_accuracy="), "{log}");
    let model = Model::load(&dir.path().join("model")).unwrap();
    assert_eq!((model.n_features(), model.task()), (4, Task::Classification));
    let labels = predict(&model, "5.1,3.5,1.4,0.2\r\n 6.7 , 3.0,5.2,2.3\n\n").unwrap();
    assert_eq!(labels, ["setosa", "virginica"]);
}

#[test]
fn max_leaf_nodes_caps_the_tree() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree", "max_leaf_nodes": "2"}"#, &iris());
    let (report, _) = train(dir.path());
    // Two leaves can separate setosa from the rest, no more: at most 2/3 of iris.
    assert!(report.unwrap().train_accuracy.unwrap() <= 0.67);
    let model = Model::load(&dir.path().join("model")).unwrap();
    assert_eq!(model.trees()[0].leaves(), 2);
}

#[test]
fn bad_input_fails_with_a_reason_in_the_failure_file() {
    let cases = [
        (r#"{"algorithm": "decision-tree", "max_depth": "deep"}"#, iris(), "max_depth = \"deep\""),
        (r#"{"algorithm": "decision-tree", "max_leafs": "3"}"#, iris(), "unknown hyperparameter `max_leafs`"),
        (
            r#"{"algorithm": "decision-tree"}"#,
            "a,1,2\nb,1,x\n".to_owned(),
            "training/train.csv line 2, column 3: \"x\"",
        ),
        (r#"{"algorithm": "decision-tree"}"#, "a,1,2\nb,1\n".to_owned(), "line 2 has 2 columns"),
        (r#"{"algorithm": "boosted"}"#, iris(), "algorithm = \"boosted\""),
    ];
    for (hyperparameters, data, expected) in cases {
        let dir = opt_ml(hyperparameters, &data);
        let (result, _) = train(dir.path());
        let error = result.unwrap_err().to_string();
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
        let failure = std::fs::read_to_string(dir.path().join("output/failure")).unwrap();
        assert_eq!(failure, error);
        assert!(!dir.path().join("model/model.json").exists());
    }
}

#[test]
fn bad_rows_are_named_by_row_and_column() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree"}"#, &iris());
    train(dir.path()).0.unwrap();
    let model = Model::load(&dir.path().join("model")).unwrap();
    let wrong = |body: &str| predict(&model, body).unwrap_err().to_string();
    assert_eq!(wrong("5.1,3.5,1.4,0.2\n5.1,oops,1.4,0.2"), "row 2, column 2: \"oops\" is not a number");
    assert!(wrong("5.1,3.5,1.4").contains("row 1 has 3 columns; this model takes 4 features"));
    assert!(wrong("\n\n").contains("no rows"));
}

#[test]
fn a_regression_forest_learns_a_line_reproducibly() {
    let rows: String = (0..400).map(|i| format!("{},{}\n", 2.0 * f64::from(i) / 10.0, f64::from(i) / 10.0)).collect();
    let hyperparameters = r#"{"algorithm": "random-forest", "task": "regression", "n_trees": "20", "seed": "7"}"#;
    let first = opt_ml(hyperparameters, &rows);
    let report = train(first.path()).0.unwrap();
    assert!(report.train_rmse.unwrap() < 0.5, "{report:?}");
    let second = opt_ml(hyperparameters, &rows);
    train(second.path()).0.unwrap();
    let read = |d: &tempfile::TempDir| std::fs::read(d.path().join("model/model.json")).unwrap();
    assert_eq!(read(&first), read(&second), "same seed, same forest");
    let model = Model::load(&first.path().join("model")).unwrap();
    let y: f64 = predict(&model, "10.05").unwrap()[0].parse().unwrap();
    assert!((y - 20.1).abs() < 1.0, "{y}");
}

#[test]
fn a_classification_forest_beats_chance_on_iris() {
    let dir = opt_ml(r#"{"algorithm": "random-forest", "n_trees": "25"}"#, &iris());
    let report = train(dir.path()).0.unwrap();
    assert!(report.train_accuracy.unwrap() >= 0.95);
    assert_eq!(Model::load(&dir.path().join("model")).unwrap().trees().len(), 25);
}

#[test]
fn a_damaged_model_file_is_refused() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree"}"#, &iris());
    train(dir.path()).0.unwrap();
    let path = dir.path().join("model/model.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"l\":1", "\"l\":99999", 1)).unwrap();
    assert!(Model::load(&dir.path().join("model")).unwrap_err().to_string().contains("damaged"));
}
