//! Channels as SageMaker hands them over: folders of header-less CSV files, label in column 0.

use std::path::Path;

use crate::Error;
use crate::error::io_error;
use crate::hyperparameters::Task;

/// Labelled rows, features stored column by column so a split scans one contiguous column.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub n_rows: usize,
    pub n_features: usize,
    /// `features[f * n_rows + row]`.
    pub features: Vec<f32>,
    pub target: Target,
}

/// The label column.
#[derive(Debug, Clone)]
pub enum Target {
    /// Index into `classes`, which is sorted.
    Classes {
        classes: Vec<String>,
        y: Vec<u32>,
    },
    Values(Vec<f64>),
}

impl Dataset {
    pub fn column(&self, feature: usize) -> &[f32] {
        &self.features[feature * self.n_rows..(feature + 1) * self.n_rows]
    }

    /// Row `row`'s features, gathered from the columns.
    pub fn row(&self, row: usize, out: &mut Vec<f32>) {
        out.clear();
        out.extend((0..self.n_features).map(|f| self.features[f * self.n_rows + row]));
    }

    /// Builds a dataset from labels and row-major features; class labels are sorted as scikit-learn sorts them.
    pub fn from_rows(labels: Vec<String>, rows: &[f32], n_features: usize, task: Task) -> Result<Dataset, Error> {
        let n_rows = labels.len();
        if n_features == 0 || rows.len() != n_rows * n_features {
            return Err(Error::Data(format!(
                "{} feature values do not make {n_rows} rows of {n_features} features",
                rows.len()
            )));
        }
        let mut features = vec![0.0; rows.len()];
        for (i, chunk) in rows.chunks_exact(n_features.max(1)).enumerate() {
            for (f, value) in chunk.iter().enumerate() {
                features[f * n_rows + i] = *value;
            }
        }
        let target = match task {
            Task::Classification => {
                let mut classes = labels.clone();
                classes.sort();
                classes.dedup();
                let y = labels.iter().map(|l| classes.binary_search(l).unwrap_or_default() as u32).collect();
                Target::Classes { classes, y }
            }
            Task::Regression => {
                let mut values = Vec::with_capacity(n_rows);
                for (i, label) in labels.iter().enumerate() {
                    let value: f64 = label.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                        Error::Data(format!("row {}: label \"{label}\" is not a number (task = regression)", i + 1))
                    })?;
                    values.push(value);
                }
                Target::Values(values)
            }
        };
        Ok(Dataset { n_rows, n_features, features, target })
    }
}

/// Reads every file of a channel folder (or a single file), in name order.
pub fn read_channel(channel: &Path, task: Task) -> Result<Dataset, Error> {
    let name = channel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut files = Vec::new();
    let single_file = !channel.is_dir();
    if !single_file {
        for entry in std::fs::read_dir(channel).map_err(io_error(channel))? {
            let path = entry.map_err(io_error(channel))?.path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
        files.sort();
    } else {
        files.push(channel.to_path_buf());
    }
    let mut labels = Vec::new();
    let mut rows = Vec::new();
    let mut width: Option<(usize, String)> = None;
    for file in &files {
        let file_name = file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        // A channel given as a single file (as fit_bench does) is named by that file alone.
        let shown = if single_file { file_name.into_owned() } else { format!("{name}/{file_name}") };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(file)
            .map_err(|e| Error::Data(format!("{shown}: {e}")))?;
        for record in reader.records() {
            let record = record.map_err(|e| Error::Data(format!("{shown}: {e}")))?;
            let line = record.position().map_or(0, |p| p.line());
            if record.iter().all(str::is_empty) {
                continue;
            }
            if record.len() < 2 {
                return Err(Error::Data(format!(
                    "{shown} line {line}: a row needs a label in column 0 and at least one feature"
                )));
            }
            match &width {
                None => width = Some((record.len(), format!("{shown} line {line}"))),
                Some((n, first)) if *n != record.len() => {
                    return Err(Error::Data(format!(
                        "{shown} line {line} has {} columns, but {first} has {n}",
                        record.len()
                    )));
                }
                Some(_) => {}
            }
            let hint = if labels.is_empty() { "; channels have no header row, and the label is column 1" } else { "" };
            for (column, field) in record.iter().enumerate().skip(1) {
                let value: f32 = field.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                    Error::Data(format!(
                        "{shown} line {line}, column {}: \"{field}\" is not a number{}",
                        column + 1,
                        if field.parse::<f32>().is_ok() { " (NaN and infinity cannot be split on)" } else { hint }
                    ))
                })?;
                rows.push(value);
            }
            let label = record.get(0).unwrap_or_default();
            let bad_label = match task {
                Task::Classification => label.is_empty().then_some("is empty; every row needs a class label"),
                Task::Regression => label
                    .parse::<f64>()
                    .map_or(true, |v| !v.is_finite())
                    .then_some("is not a number (task = regression needs a numeric label)"),
            };
            if let Some(reason) = bad_label {
                return Err(Error::Data(format!("{shown} line {line}, column 1: label \"{label}\" {reason}{hint}")));
            }
            labels.push(label.to_owned());
        }
    }
    let Some((columns, _)) = width else {
        return Err(Error::Data(format!("channel {name} has no rows ({} files)", files.len())));
    };
    Dataset::from_rows(labels, &rows, columns - 1, task).map_err(|e| match e {
        Error::Data(message) => Error::Data(format!("{name}: {message}")),
        other => other,
    })
}
