//! Fitting: one tree on every row, or a forest of trees on bootstrap samples, grown in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::data::Dataset;
use crate::hyperparameters::{AlgorithmKind, Hyperparameters};
use crate::rng::Rng;
use crate::tree::{self, Tree, TreeParams};

/// Fits the trees the hyperparameters ask for.
pub fn fit(data: &Dataset, hp: &Hyperparameters) -> Vec<Tree> {
    let presorted = tree::presort(data);
    let params = TreeParams {
        max_depth: hp.max_depth,
        max_leaf_nodes: hp.max_leaf_nodes,
        min_samples_split: hp.min_samples_split,
        min_samples_leaf: hp.min_samples_leaf,
        max_features: hp.max_features.resolve(data.n_features),
        seed: hp.seed,
    };
    if hp.algorithm == AlgorithmKind::DecisionTree {
        return vec![tree::grow(data, &presorted, &vec![1.0; data.n_rows], &params)];
    }
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(hp.n_trees);
    let mut trees: Vec<(usize, Tree)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut grown = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= hp.n_trees {
                            return grown;
                        }
                        // Each tree's randomness depends only on the seed and its index, not on scheduling.
                        let seed = hp.seed.wrapping_mul(1_000_003).wrapping_add(index as u64);
                        let weights = bootstrap(data.n_rows, seed);
                        let params = TreeParams { seed: seed ^ 0xA5A5_A5A5, ..params };
                        grown.push((index, tree::grow(data, &presorted, &weights, &params)));
                    }
                })
            })
            .collect();
        // A worker that panicked has lost its trees: re-raise rather than return a smaller forest.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    trees.sort_by_key(|(index, _)| *index);
    trees.into_iter().map(|(_, tree)| tree).collect()
}

/// How many times each row was drawn in `n` draws with replacement.
fn bootstrap(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut counts = vec![0.0; n];
    for _ in 0..n {
        counts[rng.below(n)] += 1.0;
    }
    counts
}
