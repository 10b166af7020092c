//! The algorithms' hyperparameters, parsed strictly from SageMaker's all-strings `hyperparameters.json`.

use std::collections::BTreeMap;

use crate::Error;

/// Which algorithm to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmKind {
    DecisionTree,
    RandomForest,
}

/// What the label column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

/// How many features each split considers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFeatures {
    All,
    Sqrt,
    Log2,
    Count(usize),
    Fraction(f64),
}

impl MaxFeatures {
    pub(crate) fn resolve(self, n_features: usize) -> usize {
        let n = n_features as f64;
        let count = match self {
            MaxFeatures::All => n_features,
            MaxFeatures::Sqrt => n.sqrt() as usize,
            MaxFeatures::Log2 => n.log2() as usize,
            MaxFeatures::Count(c) => c,
            MaxFeatures::Fraction(f) => (f * n) as usize,
        };
        count.clamp(1, n_features.max(1))
    }
}

/// Everything `train` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    pub algorithm: AlgorithmKind,
    pub task: Task,
    pub max_depth: Option<usize>,
    pub max_leaf_nodes: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub n_trees: usize,
    pub max_features: MaxFeatures,
    pub seed: u64,
}

const NAMES: [&str; 9] = [
    "algorithm",
    "task",
    "max_depth",
    "max_leaf_nodes",
    "min_samples_split",
    "min_samples_leaf",
    "n_trees",
    "max_features",
    "seed",
];

impl Hyperparameters {
    /// Parses the hyperparameters; SageMaker's own (`sagemaker_*`) and private (`_*`) names are ignored.
    pub fn parse(values: &BTreeMap<String, String>) -> Result<Hyperparameters, Error> {
        for name in values.keys() {
            if !NAMES.contains(&name.as_str()) && !name.starts_with("sagemaker_") && !name.starts_with('_') {
                let close = NAMES.iter().find(|known| close_enough(name, known));
                let hint = match close {
                    Some(known) => format!("did you mean `{known}`?"),
                    None => format!("the built-in algorithms take: {}", NAMES.join(", ")),
                };
                return Err(Error::Hyperparameter(format!("unknown hyperparameter `{name}`; {hint}")));
            }
        }
        let get = |name: &str| values.get(name).map(|v| v.trim());
        let algorithm = match get("algorithm") {
            Some("decision-tree") => AlgorithmKind::DecisionTree,
            Some("random-forest") => AlgorithmKind::RandomForest,
            Some(other) => return Err(invalid("algorithm", other, "decision-tree or random-forest")),
            None => {
                return Err(Error::Hyperparameter(
                    "hyperparameter `algorithm` is required (decision-tree or random-forest)".into(),
                ));
            }
        };
        let task = match get("task") {
            None | Some("classification") => Task::Classification,
            Some("regression") => Task::Regression,
            Some(other) => return Err(invalid("task", other, "classification or regression")),
        };
        let max_features = match get("max_features") {
            None if algorithm == AlgorithmKind::RandomForest && task == Task::Classification => MaxFeatures::Sqrt,
            None | Some("all") => MaxFeatures::All,
            Some("sqrt") => MaxFeatures::Sqrt,
            Some("log2") => MaxFeatures::Log2,
            Some(text) => match (text.parse::<usize>(), text.parse::<f64>()) {
                (Ok(count), _) if count >= 1 => MaxFeatures::Count(count),
                (Err(_), Ok(fraction)) if fraction > 0.0 && fraction <= 1.0 => MaxFeatures::Fraction(fraction),
                _ => {
                    return Err(invalid("max_features", text, "all, sqrt, log2, a count >= 1 or a fraction in (0, 1]"));
                }
            },
        };
        Ok(Hyperparameters {
            algorithm,
            task,
            max_depth: optional(get("max_depth"), "max_depth", 1)?,
            max_leaf_nodes: optional(get("max_leaf_nodes"), "max_leaf_nodes", 2)?,
            min_samples_split: optional(get("min_samples_split"), "min_samples_split", 2)?.unwrap_or(2),
            min_samples_leaf: optional(get("min_samples_leaf"), "min_samples_leaf", 1)?.unwrap_or(1),
            n_trees: optional(get("n_trees"), "n_trees", 1)?.unwrap_or(100),
            max_features,
            seed: match get("seed") {
                None => 0,
                Some(text) => text.parse().map_err(|_| invalid("seed", text, "a non-negative integer"))?,
            },
        })
    }
}

fn optional(text: Option<&str>, name: &str, min: usize) -> Result<Option<usize>, Error> {
    let Some(text) = text else { return Ok(None) };
    match text.parse::<usize>() {
        Ok(n) if n >= min => Ok(Some(n)),
        _ if min == 1 => Err(invalid(name, text, "a positive integer")),
        _ => Err(invalid(name, text, &format!("an integer >= {min}"))),
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> Error {
    Error::Hyperparameter(format!("hyperparameter {name} = \"{value}\" is not {expected}"))
}

/// A typo: same length give or take one, and at most two characters different.
fn close_enough(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut next = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            next.push((row[j] + usize::from(ca != cb)).min(row[j + 1] + 1).min(next[j] + 1));
        }
        row = next;
    }
    row[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Hyperparameters, Error> {
        Hyperparameters::parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn strict_values() {
        let ok = parse(&[("algorithm", "decision-tree"), ("max_leaf_nodes", "5"), ("sagemaker_region", "x")]).unwrap();
        assert_eq!(ok.max_leaf_nodes, Some(5));
        assert_eq!(ok.max_features, MaxFeatures::All);
        let error = parse(&[("algorithm", "decision-tree"), ("max_depth", "deep")]).unwrap_err().to_string();
        assert_eq!(error, "hyperparameter max_depth = \"deep\" is not a positive integer");
        assert!(parse(&[("algorithm", "decision-tree"), ("max_leaf_nodes", "1")]).is_err());
        let typo = parse(&[("algorithm", "decision-tree"), ("max_leafs", "3")]).unwrap_err().to_string();
        assert!(typo.contains("unknown hyperparameter `max_leafs`"), "{typo}");
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn forests_default_to_sqrt_features() {
        let forest = parse(&[("algorithm", "random-forest")]).unwrap();
        assert_eq!((forest.max_features, forest.n_trees), (MaxFeatures::Sqrt, 100));
        assert_eq!(MaxFeatures::Sqrt.resolve(20), 4);
        assert_eq!(MaxFeatures::Fraction(0.01).resolve(20), 1);
    }
}
