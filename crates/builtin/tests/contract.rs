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

fn iris_features() -> String {
    iris().lines().map(|l| l.split_once(',').map_or("", |(_, x)| x)).collect::<Vec<_>>().join("\n")
}

#[test]
fn two_leaves_give_at_most_two_distinct_predictions() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree", "max_leaf_nodes": "2"}"#, &iris());
    train(dir.path()).0.unwrap();
    let model = Model::load(&dir.path().join("model")).unwrap();
    let mut labels = predict(&model, &iris_features()).unwrap();
    assert_eq!(labels.len(), 150);
    labels.sort();
    labels.dedup();
    assert!(labels.len() <= 2, "{labels:?}");
}

#[test]
fn a_regression_tree_fits_y_equals_2x_and_reports_rmse_and_r2() {
    let rows: String = (0..200).map(|i| format!("{},{}\n", 2.0 * f64::from(i) * 0.25, f64::from(i) * 0.25)).collect();
    let dir = opt_ml(r#"{"algorithm": "decision-tree", "task": "regression"}"#, &rows);
    std::fs::create_dir_all(dir.path().join("input/data/validation")).unwrap();
    std::fs::write(dir.path().join("input/data/validation/v.csv"), "10.5,5.25\n40,20\n").unwrap();
    let (report, log) = train(dir.path());
    let report = report.unwrap();
    assert!(report.train_rmse.unwrap() < 1e-9, "{log}");
    assert!(report.train_r2.unwrap() > 0.9999, "{log}");
    assert!(report.validation_rmse.unwrap() < 0.6, "{log}");
    for metric in ["train_rmse=", "train_r2=", "validation_rmse=", "validation_r2="] {
        assert!(log.contains(metric), "{metric} not in {log}");
    }
    let model = Model::load(&dir.path().join("model")).unwrap();
    assert_eq!(model.task(), Task::Regression);
    let y: Vec<f64> = predict(&model, "3.0\n7.25").unwrap().iter().map(|v| v.parse().unwrap()).collect();
    assert!((y[0] - 6.0).abs() < 0.6 && (y[1] - 14.5).abs() < 1e-9, "{y:?}");
}

#[test]
fn a_classification_forest_is_deterministic_for_a_seed_and_reports_validation() {
    let hyperparameters = r#"{"algorithm": "random-forest", "n_trees": "12", "seed": "42", "_tuning": "x"}"#;
    let model_of = || {
        let dir = opt_ml(hyperparameters, &iris());
        std::fs::create_dir_all(dir.path().join("input/data/validation")).unwrap();
        std::fs::write(dir.path().join("input/data/validation/v.csv"), iris()).unwrap();
        let (report, log) = train(dir.path());
        assert!(report.unwrap().validation_accuracy.unwrap() >= 0.95, "{log}");
        assert!(log.contains("validation_accuracy="), "{log}");
        std::fs::read(dir.path().join("model/model.json")).unwrap()
    };
    assert_eq!(model_of(), model_of());
    let other = opt_ml(r#"{"algorithm": "random-forest", "n_trees": "12", "seed": "43"}"#, &iris());
    train(other.path()).0.unwrap();
    assert_ne!(std::fs::read(other.path().join("model/model.json")).unwrap(), model_of());
}

#[test]
fn unusable_channels_are_explained() {
    let tree = r#"{"algorithm": "decision-tree"}"#;
    let cases = [
        (tree, "a,1,nan\n", "line 1, column 3: \"nan\" is not a number"),
        (tree, "a,1,2\n,1,2\n", "line 2, column 1: label \"\" is empty"),
        (r#"{"algorithm": "decision-tree", "task": "regression"}"#, "1,1\nbig,2\n", "train.csv line 2, column 1"),
        (tree, "\n\n", "channel training has no rows"),
        (r#"{"algorithm": "decision-tree", "max_features": "1.5"}"#, "a,1\n", "max_features = \"1.5\""),
        (r#"{"algorithm": 3}"#, "a,1\n", "JSON object of strings"),
    ];
    for (hyperparameters, data, expected) in cases {
        let dir = opt_ml(hyperparameters, data);
        let error = train(dir.path()).0.unwrap_err().to_string();
        assert!(error.contains(expected), "{expected:?} not in {error:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join("output/failure")).unwrap(), error);
    }
    let dir = opt_ml(tree, "a,1\n");
    std::fs::remove_dir_all(dir.path().join("input/data/training")).unwrap();
    assert!(train(dir.path()).0.unwrap_err().to_string().contains("no `training` channel"));
}

#[test]
fn every_training_file_is_read_in_name_order() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree"}"#, "a,1\n");
    std::fs::write(dir.path().join("input/data/training/b.csv"), "b,2\nb,3\n").unwrap();
    let report = train(dir.path()).0.unwrap();
    assert_eq!((report.rows, report.train_accuracy), (3, Some(1.0)));
}

#[test]
fn predictions_refuse_infinite_values_and_models_with_unknown_classes() {
    let dir = opt_ml(r#"{"algorithm": "decision-tree"}"#, &iris());
    train(dir.path()).0.unwrap();
    let model = Model::load(&dir.path().join("model")).unwrap();
    let error = predict(&model, "1,2,3,inf").unwrap_err().to_string();
    assert_eq!(error, "row 1, column 4: \"inf\" is not a number");
    let path = dir.path().join("model/model.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"r\":0,\"v\":0.0}"), "a setosa leaf: {text}");
    std::fs::write(&path, text.replacen("\"r\":0,\"v\":0.0}", "\"r\":0,\"v\":7.0}", 1)).unwrap();
    assert!(Model::load(&dir.path().join("model")).unwrap_err().to_string().contains("damaged"));
}
