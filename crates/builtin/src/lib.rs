//! Built-in algorithms (decision tree and random forest, classifier and regressor) behind the SageMaker train/serve contract.

mod data;
mod error;
mod forest;
mod hyperparameters;
mod model;
mod rng;
mod tree;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

pub use data::{Dataset, Target, read_channel};
pub use error::Error;
pub use forest::fit;
pub use hyperparameters::{AlgorithmKind, Hyperparameters, MaxFeatures, Task};
pub use model::Model;
pub use tree::{Node, Tree};

use error::io_error;

/// What training measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainReport {
    pub rows: usize,
    pub train_accuracy: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub train_rmse: Option<f64>,
    pub validation_rmse: Option<f64>,
    /// Coefficient of determination of a regression model on the training rows.
    pub train_r2: Option<f64>,
    pub validation_r2: Option<f64>,
}

/// Trains on `<opt_ml>/input` and writes `<opt_ml>/model/model.json`, logging metrics to `log`;
/// on failure, writes the reason to `<opt_ml>/output/failure`, as a SageMaker container must.
pub fn train(opt_ml: &Path, log: &mut dyn Write) -> Result<TrainReport, Error> {
    let result = train_inner(opt_ml, log);
    if let Err(error) = &result {
        let output = opt_ml.join("output");
        let _ = std::fs::create_dir_all(&output);
        let _ = std::fs::write(output.join("failure"), error.to_string());
    }
    result
}

fn train_inner(opt_ml: &Path, log: &mut dyn Write) -> Result<TrainReport, Error> {
    let config = opt_ml.join("input/config/hyperparameters.json");
    let values: BTreeMap<String, String> = match std::fs::read(&config) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Hyperparameter(format!("{} must be a JSON object of strings: {e}", config.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(io_error(&config)(e)),
    };
    let hp = Hyperparameters::parse(&values)?;
    let channels = opt_ml.join("input/data");
    let training = channels.join("training");
    if !training.exists() {
        return Err(Error::Data("no `training` channel: pass the training data as channel `training`".into()));
    }
    let data = read_channel(&training, hp.task)?;
    let validation = channels.join("validation");
    let validation = if validation.exists() { Some(read_channel(&validation, hp.task)?) } else { None };
    if let Some(v) = &validation
        && v.n_features != data.n_features
    {
        return Err(Error::Data(format!(
            "validation has {} features but training has {}",
            v.n_features, data.n_features
        )));
    }
    let line = |log: &mut dyn Write, text: String| {
        let _ = writeln!(log, "{text}");
    };
    let classes = match &data.target {
        Target::Classes { classes, .. } => classes.clone(),
        Target::Values(_) => Vec::new(),
    };
    line(
        log,
        format!(
            "fitting {:?} ({:?}) on {} rows x {} features{}",
            hp.algorithm,
            hp.task,
            data.n_rows,
            data.n_features,
            if classes.is_empty() { String::new() } else { format!(", {} classes", classes.len()) }
        ),
    );
    let started = Instant::now();
    let trees = fit(&data, &hp);
    let leaves: usize = trees.iter().map(Tree::leaves).sum();
    line(log, format!("fit {} tree(s), {leaves} leaves, in {:.3} s", trees.len(), started.elapsed().as_secs_f64()));
    let model = Model::new(hp.algorithm, hp.task, data.n_features, classes, trees);

    let mut report = TrainReport { rows: data.n_rows, ..TrainReport::default() };
    match hp.task {
        Task::Classification => {
            let train = accuracy(&model, &data);
            line(log, format!("train_accuracy={train:.4}"));
            report.train_accuracy = Some(train);
            if let Some(v) = &validation {
                let value = accuracy(&model, v);
                line(log, format!("validation_accuracy={value:.4}"));
                report.validation_accuracy = Some(value);
            }
        }
        Task::Regression => {
            let (train, train_r2) = (rmse(&model, &data), r2(&model, &data));
            line(log, format!("train_rmse={train:.6}"));
            line(log, format!("train_r2={train_r2:.4}"));
            (report.train_rmse, report.train_r2) = (Some(train), Some(train_r2));
            if let Some(v) = &validation {
                let (value, value_r2) = (rmse(&model, v), r2(&model, v));
                line(log, format!("validation_rmse={value:.6}"));
                line(log, format!("validation_r2={value_r2:.4}"));
                (report.validation_rmse, report.validation_r2) = (Some(value), Some(value_r2));
            }
        }
    }
    model.save(&opt_ml.join("model"))?;
    Ok(report)
}

/// Share of rows whose label the model predicts; labels the model never saw count as misses.
pub fn accuracy(model: &Model, data: &Dataset) -> f64 {
    let Target::Classes { classes, y } = &data.target else { return 0.0 };
    let mut row = Vec::new();
    let hits = (0..data.n_rows)
        .filter(|&i| {
            data.row(i, &mut row);
            model.label(model.predict_row(&row)) == classes[y[i] as usize]
        })
        .count();
    hits as f64 / data.n_rows.max(1) as f64
}

/// Root mean squared error of a regression model.
pub fn rmse(model: &Model, data: &Dataset) -> f64 {
    (squared_error(model, data) / data.n_rows.max(1) as f64).sqrt()
}

/// R² of a regression model: 1 is perfect, 0 is no better than predicting the mean.
pub fn r2(model: &Model, data: &Dataset) -> f64 {
    let Target::Values(values) = &data.target else { return f64::NAN };
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let total: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    let error = squared_error(model, data);
    // Constant labels leave R² undefined; a perfect fit of them still deserves 1.
    if total > 0.0 {
        1.0 - error / total
    } else if error == 0.0 {
        1.0
    } else {
        0.0
    }
}

fn squared_error(model: &Model, data: &Dataset) -> f64 {
    let Target::Values(values) = &data.target else { return f64::NAN };
    let mut row = Vec::new();
    (0..data.n_rows)
        .map(|i| {
            data.row(i, &mut row);
            (model.predict_row(&row) - values[i]).powi(2)
        })
        .sum()
}
