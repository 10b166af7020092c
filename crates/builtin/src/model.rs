//! A fitted model: `model.json` on disk, and prediction of CSV rows for `/invocations`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::io_error;
use crate::hyperparameters::{AlgorithmKind, Task};
use crate::tree::Tree;

/// Bumped when `model.json` changes shape.
const FORMAT: u32 = 1;
const FILE: &str = "model.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    format: u32,
    algorithm: AlgorithmKind,
    task: Task,
    n_features: usize,
    /// Class labels for classification, indexed by leaf value.
    classes: Vec<String>,
    trees: Vec<Tree>,
}

impl Model {
    pub fn new(
        algorithm: AlgorithmKind,
        task: Task,
        n_features: usize,
        classes: Vec<String>,
        trees: Vec<Tree>,
    ) -> Model {
        Model { format: FORMAT, algorithm, task, n_features, classes, trees }
    }

    /// Reads `model_dir/model.json`, checking it can be served.
    pub fn load(model_dir: &Path) -> Result<Model, Error> {
        let path = model_dir.join(FILE);
        let text = std::fs::read(&path).map_err(io_error(&path))?;
        Model::from_json(&text, &path.display().to_string())
    }

    /// Parses a `model.json` (named `what` in errors), checking it can be served.
    pub fn from_json(text: &[u8], what: &str) -> Result<Model, Error> {
        let model: Model =
            serde_json::from_slice(text).map_err(|e| Error::Model(format!("{what} is not a sagebrush model: {e}")))?;
        if model.format != FORMAT {
            return Err(Error::Model(format!(
                "{what} has format {}; this sagebrush reads format {FORMAT}",
                model.format
            )));
        }
        let classes_ok = model.task == Task::Regression || !model.classes.is_empty();
        // A leaf must name a class the model has, so serving never indexes past the labels.
        let leaf_ok = |value: f64| match model.task {
            Task::Classification => value >= 0.0 && value.fract() == 0.0 && (value as usize) < model.classes.len(),
            Task::Regression => value.is_finite(),
        };
        let trees_ok = model.trees.iter().all(|t| {
            t.is_well_formed(model.n_features) && t.nodes.iter().filter(|n| n.feature < 0).all(|n| leaf_ok(n.value))
        });
        if model.trees.is_empty() || !classes_ok || !trees_ok {
            return Err(Error::Model(format!("{what} is damaged: its trees do not fit together")));
        }
        Ok(model)
    }

    /// About how many bytes the model takes in memory: its nodes and class labels.
    pub fn memory_bytes(&self) -> usize {
        let nodes: usize = self.trees.iter().map(|t| t.nodes.len() * std::mem::size_of_val(&t.nodes[0])).sum();
        let classes: usize = self.classes.iter().map(|c| c.len() + std::mem::size_of::<String>()).sum();
        std::mem::size_of::<Model>() + nodes + classes
    }

    pub(crate) fn save(&self, model_dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(model_dir).map_err(io_error(model_dir))?;
        let path = model_dir.join(FILE);
        let text = serde_json::to_vec(self).map_err(|e| Error::Model(e.to_string()))?;
        std::fs::write(&path, text).map_err(io_error(&path))
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn task(&self) -> Task {
        self.task
    }

    pub fn algorithm(&self) -> AlgorithmKind {
        self.algorithm
    }

    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// The prediction for one row: a class index (as f64) or a value.
    pub fn predict_row(&self, x: &[f32]) -> f64 {
        if let [tree] = self.trees.as_slice() {
            return tree.predict(x);
        }
        match self.task {
            Task::Regression => self.trees.iter().map(|t| t.predict(x)).sum::<f64>() / self.trees.len() as f64,
            Task::Classification => {
                let mut votes = vec![0u32; self.classes.len()];
                for tree in &self.trees {
                    if let Some(v) = votes.get_mut(tree.predict(x) as usize) {
                        *v += 1;
                    }
                }
                let mut best = 0;
                for (i, v) in votes.iter().enumerate() {
                    if *v > votes[best] {
                        best = i;
                    }
                }
                best as f64
            }
        }
    }

    /// The label a prediction stands for.
    pub fn label(&self, prediction: f64) -> String {
        match self.task {
            Task::Classification => self.classes.get(prediction as usize).cloned().unwrap_or_default(),
            Task::Regression => prediction.to_string(),
        }
    }

    /// Predicts every CSV row of `body` (features only), appending one prediction per line; returns the rows predicted.
    pub fn predict_csv(&self, body: &[u8], out: &mut Vec<u8>) -> Result<usize, Error> {
        let text =
            std::str::from_utf8(body).map_err(|e| Error::Request(format!("the request is not UTF-8 text: {e}")))?;
        let mut row = Vec::with_capacity(self.n_features);
        let mut count = 0;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let number = index + 1;
            row.clear();
            for (column, field) in line.split(',').enumerate() {
                let field = field.trim();
                let value: f32 = field.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                    // Quoted in part: a field may be megabytes long.
                    let shown = names::excerpt(field, 40);
                    Error::Request(format!("row {number}, column {}: \"{shown}\" is not a number", column + 1))
                })?;
                row.push(value);
            }
            if row.len() != self.n_features {
                return Err(Error::Request(format!(
                    "row {number} has {} columns; this model takes {} features (no label column)",
                    row.len(),
                    self.n_features
                )));
            }
            let prediction = self.predict_row(&row);
            match self.task {
                Task::Classification => {
                    out.extend_from_slice(self.classes.get(prediction as usize).map_or("", String::as_str).as_bytes())
                }
                Task::Regression => out.extend_from_slice(prediction.to_string().as_bytes()),
            }
            out.push(b'\n');
            count += 1;
        }
        if count == 0 {
            return Err(Error::Request("the request has no rows; send CSV rows of features, one per line".into()));
        }
        Ok(count)
    }
}
