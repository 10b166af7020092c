//! Times a fully grown decision tree classifier, for bench/tree/run.sh.
//!
//! Usage: fit_bench <train.csv> <holdout.csv>; prints one JSON line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use builtin::{Hyperparameters, Model, Target, Task, Tree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, train, holdout] = args.as_slice() else {
        return Err("usage: fit_bench <train.csv> <holdout.csv>".into());
    };
    let train = builtin::read_channel(Path::new(train), Task::Classification)?;
    let holdout = builtin::read_channel(Path::new(holdout), Task::Classification)?;
    let hp = Hyperparameters::parse(&BTreeMap::from([("algorithm".to_owned(), "decision-tree".to_owned())]))?;
    let started = Instant::now();
    let trees = builtin::fit(&train, &hp);
    let fit_seconds = started.elapsed().as_secs_f64();
    let Target::Classes { classes, .. } = &train.target else { return Err("not a classification dataset".into()) };
    let leaves: usize = trees.iter().map(Tree::leaves).sum();
    let model = Model::new(hp.algorithm, hp.task, train.n_features, classes.clone(), trees);
    let holdout_accuracy = builtin::accuracy(&model, &holdout);
    println!(
        "{{\"fit_seconds\":{fit_seconds:.4},\"holdout_accuracy\":{holdout_accuracy:.4},\"rows\":{},\"leaves\":{leaves}}}",
        train.n_rows
    );
    Ok(())
}
