//! CART: one decision tree grown on presorted feature columns, so no node ever sorts.
//!
//! Every feature keeps the node's rows in value order within one shared range; a split marks which
//! rows go left and stably partitions each feature's range, which keeps every child's ranges sorted.

use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Target};
use crate::rng::Rng;

/// One node; `feature < 0` marks a leaf whose prediction is `value` (a class index or a mean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(rename = "f")]
    pub feature: i32,
    #[serde(rename = "t")]
    pub threshold: f32,
    #[serde(rename = "l")]
    pub left: u32,
    #[serde(rename = "r")]
    pub right: u32,
    #[serde(rename = "v")]
    pub value: f64,
}

/// A fitted tree: node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value for one row; `x[f]` is feature `f`.
    pub fn predict(&self, x: &[f32]) -> f64 {
        let mut node = &self.nodes[0];
        while node.feature >= 0 {
            let next = if x[node.feature as usize] <= node.threshold { node.left } else { node.right };
            node = &self.nodes[next as usize];
        }
        node.value
    }

    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.feature < 0).count()
    }

    /// Checks that every child index points inside the tree and features are within `n_features`.
    pub(crate) fn is_well_formed(&self, n_features: usize) -> bool {
        let n = self.nodes.len() as u32;
        !self.nodes.is_empty()
            && self.nodes.iter().enumerate().all(|(i, node)| {
                node.feature < 0
                    || ((node.feature as usize) < n_features
                        && node.left < n
                        && node.right < n
                        && node.left as usize > i
                        && node.right as usize > i)
            })
    }
}

/// How far a tree may grow.
#[derive(Debug, Clone, Copy)]
pub struct TreeParams {
    pub max_depth: Option<usize>,
    pub max_leaf_nodes: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    /// Features considered per split (all of them for a plain tree).
    pub max_features: usize,
    pub seed: u64,
}

/// Row indices of each feature, sorted by value; shared by every tree of a forest.
pub fn presort(data: &Dataset) -> Vec<Vec<u32>> {
    (0..data.n_features)
        .map(|f| {
            let column = data.column(f);
            let mut order: Vec<u32> = (0..data.n_rows as u32).collect();
            order.sort_unstable_by(|a, b| column[*a as usize].total_cmp(&column[*b as usize]));
            order
        })
        .collect()
}

/// Grows a tree on the rows with a non-zero weight (bootstrap counts for a forest, all ones for a tree).
pub fn grow(data: &Dataset, presorted: &[Vec<u32>], weights: &[f64], params: &TreeParams) -> Tree {
    let order: Vec<Vec<u32>> =
        presorted.iter().map(|rows| rows.iter().copied().filter(|r| weights[*r as usize] > 0.0).collect()).collect();
    let n = order.first().map_or(0, Vec::len);
    let mut grower = Grower {
        data,
        weights,
        params,
        order,
        goes_left: vec![false; data.n_rows],
        scratch: Vec::with_capacity(n),
        nodes: Vec::new(),
        rng: Rng::new(params.seed),
        features: (0..data.n_features).collect(),
        left_counts: Vec::new(),
    };
    let all: Vec<u32> = grower.order.first().cloned().unwrap_or_default();
    let root = grower.stats_of(&all);
    let root = grower.open(0, n, 0, root);
    // Depth first unless the leaves are capped: then best first, as scikit-learn does.
    match params.max_leaf_nodes {
        None => {
            let mut stack = vec![root];
            while let Some(pending) = stack.pop() {
                if let Some((left, right)) = grower.split(pending) {
                    stack.push(right);
                    stack.push(left);
                }
            }
        }
        Some(max_leaves) => {
            let mut heap = BinaryHeap::from([root]);
            let mut leaves = 1;
            while leaves < max_leaves {
                let Some(pending) = heap.pop() else { break };
                if let Some((left, right)) = grower.split(pending) {
                    leaves += 1;
                    heap.push(left);
                    heap.push(right);
                }
            }
        }
    }
    Tree { nodes: grower.nodes }
}

/// Weighted label statistics of a set of rows.
#[derive(Debug, Clone)]
enum Stats {
    /// Weight per class, their total, and the sum of squared class weights (for Gini).
    Classes { counts: Vec<f64>, total: f64, squares: f64 },
    /// Weight, weighted sum and weighted sum of squares (for variance).
    Values { total: f64, sum: f64, sum_sq: f64 },
}

impl Stats {
    fn empty(data: &Dataset) -> Stats {
        match &data.target {
            Target::Classes { classes, .. } => {
                Stats::Classes { counts: vec![0.0; classes.len()], total: 0.0, squares: 0.0 }
            }
            Target::Values(_) => Stats::Values { total: 0.0, sum: 0.0, sum_sq: 0.0 },
        }
    }

    fn total(&self) -> f64 {
        match self {
            Stats::Classes { total, .. } | Stats::Values { total, .. } => *total,
        }
    }

    /// Impurity times weight: the quantity a split lowers.
    fn weighted_impurity(&self) -> f64 {
        match self {
            Stats::Classes { total, squares, .. } => total - squares / total,
            Stats::Values { total, sum, sum_sq } => sum_sq - sum * sum / total,
        }
    }

    /// The leaf prediction: the heaviest class (lowest index on ties), or the mean.
    fn value(&self) -> f64 {
        match self {
            Stats::Classes { counts, .. } => {
                let mut best = 0;
                for (i, c) in counts.iter().enumerate() {
                    if *c > counts[best] {
                        best = i;
                    }
                }
                best as f64
            }
            Stats::Values { total, sum, .. } => sum / total,
        }
    }
}

/// A node waiting to be split, with its best split already found.
struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    stats: Stats,
    split: Option<Split>,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    /// Rows of the node that go left, in the feature's order.
    left_len: usize,
    threshold: f32,
    /// Decrease of weighted impurity.
    gain: f64,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// The heap pops the largest gain first, the earlier node on ties.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let gain = |p: &Pending| p.split.map_or(f64::NEG_INFINITY, |s| s.gain);
        gain(self).total_cmp(&gain(other)).then_with(|| other.node.cmp(&self.node))
    }
}

struct Grower<'a> {
    data: &'a Dataset,
    weights: &'a [f64],
    params: &'a TreeParams,
    order: Vec<Vec<u32>>,
    goes_left: Vec<bool>,
    scratch: Vec<u32>,
    nodes: Vec<Node>,
    rng: Rng,
    features: Vec<usize>,
    /// Left-side class weights, reused while scanning a feature.
    left_counts: Vec<f64>,
}

impl Grower<'_> {
    fn stats_of(&self, rows: &[u32]) -> Stats {
        let mut stats = Stats::empty(self.data);
        for row in rows {
            self.add(&mut stats, *row as usize);
        }
        stats
    }

    fn add(&self, stats: &mut Stats, row: usize) {
        let w = self.weights[row];
        match (stats, &self.data.target) {
            (Stats::Classes { counts, total, squares }, Target::Classes { y, .. }) => {
                let c = &mut counts[y[row] as usize];
                *squares += w * (2.0 * *c + w);
                *c += w;
                *total += w;
            }
            (Stats::Values { total, sum, sum_sq }, Target::Values(values)) => {
                let v = values[row];
                *total += w;
                *sum += w * v;
                *sum_sq += w * v * v;
            }
            _ => {}
        }
    }

    /// Records a leaf for rows `start..end` and finds its best split.
    fn open(&mut self, start: usize, end: usize, depth: usize, stats: Stats) -> Pending {
        let node = self.nodes.len();
        self.nodes.push(Node { feature: -1, threshold: 0.0, left: 0, right: 0, value: stats.value() });
        let mut pending = Pending { node, start, end, depth, stats, split: None };
        pending.split = self.best_split(&pending);
        pending
    }

    fn best_split(&mut self, node: &Pending) -> Option<Split> {
        let len = node.end - node.start;
        let p = self.params;
        if len < p.min_samples_split || len < 2 * p.min_samples_leaf || p.max_depth.is_some_and(|d| node.depth >= d) {
            return None;
        }
        let parent_impurity = node.stats.weighted_impurity();
        if parent_impurity <= 1e-12 * node.stats.total().max(1.0) {
            return None;
        }
        let total = node.stats.total();
        let mut best: Option<(f64, Split)> = None;
        let n_features = self.features.len();
        let subset = p.max_features < n_features;
        let mut tried = 0;
        for i in 0..n_features {
            if subset {
                if tried >= p.max_features {
                    break;
                }
                let j = i + self.rng.below(n_features - i);
                self.features.swap(i, j);
            }
            let feature = self.features[i];
            let rows = &self.order[feature][node.start..node.end];
            let column = self.data.column(feature);
            if column[rows[0] as usize] >= column[rows[len - 1] as usize] {
                continue; // constant here: scikit-learn does not count it against max_features either
            }
            tried += 1;
            let scan = Scan {
                rows,
                column,
                weights: self.weights,
                total,
                min_leaf: p.min_samples_leaf,
                bar: best.as_ref().map_or(f64::NEG_INFINITY, |(b, _)| *b),
            };
            let found = match (&node.stats, &self.data.target) {
                (Stats::Classes { counts, .. }, Target::Classes { y, .. }) => {
                    scan.classes(y, counts, &mut self.left_counts)
                }
                (Stats::Values { sum, .. }, Target::Values(values)) => scan.values(values, *sum),
                _ => None,
            };
            if let Some((proxy, left_len, threshold)) = found {
                best = Some((proxy, Split { feature, left_len, threshold, gain: 0.0 }));
            }
        }
        let (proxy, mut split) = best?;
        // Weighted impurity of the children is `constant - proxy`; their decrease from the parent is the gain.
        split.gain = match &node.stats {
            Stats::Classes { total, squares, .. } => proxy - squares / total,
            Stats::Values { total, sum, .. } => proxy - sum * sum / total,
        };
        Some(split)
    }

    /// Splits a pending node, returning its children, or leaves it a leaf.
    fn split(&mut self, pending: Pending) -> Option<(Pending, Pending)> {
        let split = pending.split?;
        let (start, end) = (pending.start, pending.end);
        let mid = start + split.left_len;
        let chosen = &self.order[split.feature];
        for row in &chosen[start..mid] {
            self.goes_left[*row as usize] = true;
        }
        for row in &chosen[mid..end] {
            self.goes_left[*row as usize] = false;
        }
        let left_stats = self.stats_of(&self.order[split.feature][start..mid]);
        let right_stats = subtract(&pending.stats, &left_stats);
        for feature in 0..self.order.len() {
            if feature == split.feature {
                continue;
            }
            let rows = &mut self.order[feature][start..end];
            self.scratch.clear();
            let mut write = 0;
            for k in 0..rows.len() {
                let row = rows[k];
                if self.goes_left[row as usize] {
                    rows[write] = row;
                    write += 1;
                } else {
                    self.scratch.push(row);
                }
            }
            rows[write..].copy_from_slice(&self.scratch);
        }
        let depth = pending.depth + 1;
        let left = self.open(start, mid, depth, left_stats);
        let right = self.open(mid, end, depth, right_stats);
        let node = &mut self.nodes[pending.node];
        node.feature = split.feature as i32;
        node.threshold = split.threshold;
        node.left = left.node as u32;
        node.right = right.node as u32;
        Some((left, right))
    }
}

/// One feature's rows of a node, in value order, and the best proxy found so far.
struct Scan<'a> {
    rows: &'a [u32],
    column: &'a [f32],
    weights: &'a [f64],
    total: f64,
    min_leaf: usize,
    bar: f64,
}

impl Scan<'_> {
    /// Best Gini split beating `bar`, as (proxy, rows going left, threshold); the proxy is
    /// `sum(left²)/left + sum(right²)/right`, larger is better, both sums kept up to date per row.
    fn classes(&self, y: &[u32], parent: &[f64], left: &mut Vec<f64>) -> Option<(f64, usize, f32)> {
        left.clear();
        left.resize(parent.len(), 0.0);
        let (rows, column, n) = (self.rows, self.column, self.rows.len());
        let (mut lt, mut ls) = (0.0, 0.0);
        let mut rs: f64 = parent.iter().map(|c| c * c).sum();
        let mut bar = self.bar;
        let mut best = None;
        let mut here = column[rows[0] as usize];
        // Stop where the right side would fall under min_samples_leaf.
        for k in 0..n - self.min_leaf {
            let row = rows[k] as usize;
            let w = self.weights[row];
            let class = y[row] as usize;
            let l = left[class];
            ls += w * (2.0 * l + w);
            rs += w * (w - 2.0 * (parent[class] - l));
            left[class] = l + w;
            lt += w;
            let next = column[rows[k + 1] as usize];
            if next > here && k + 1 >= self.min_leaf {
                let proxy = ls / lt + rs / (self.total - lt);
                if proxy > bar {
                    bar = proxy;
                    best = Some((proxy, k + 1, midpoint(here, next)));
                }
            }
            here = next;
        }
        best
    }

    /// Best variance split beating `bar`: the proxy is `left_sum²/left + right_sum²/right`.
    fn values(&self, values: &[f64], parent_sum: f64) -> Option<(f64, usize, f32)> {
        let (rows, column, n) = (self.rows, self.column, self.rows.len());
        let (mut lt, mut sum) = (0.0, 0.0);
        let mut bar = self.bar;
        let mut best = None;
        let mut here = column[rows[0] as usize];
        for k in 0..n - self.min_leaf {
            let row = rows[k] as usize;
            let w = self.weights[row];
            lt += w;
            sum += w * values[row];
            let next = column[rows[k + 1] as usize];
            if next > here && k + 1 >= self.min_leaf {
                let right = parent_sum - sum;
                let proxy = sum * sum / lt + right * right / (self.total - lt);
                if proxy > bar {
                    bar = proxy;
                    best = Some((proxy, k + 1, midpoint(here, next)));
                }
            }
            here = next;
        }
        best
    }
}

/// Halfway between two adjacent values; `here` itself when f32 has nothing strictly between them.
fn midpoint(here: f32, next: f32) -> f32 {
    // Halving each side first cannot overflow, as scikit-learn also does.
    let threshold = here / 2.0 + next / 2.0;
    if threshold >= next || !threshold.is_finite() { here } else { threshold }
}
fn subtract(parent: &Stats, left: &Stats) -> Stats {
    match (parent, left) {
        (Stats::Classes { counts: pc, total: pt, .. }, Stats::Classes { counts: lc, total: lt, .. }) => {
            let counts: Vec<f64> = pc.iter().zip(lc).map(|(p, l)| p - l).collect();
            let squares = counts.iter().map(|c| c * c).sum();
            Stats::Classes { counts, total: pt - lt, squares }
        }
        (Stats::Values { total: pt, sum: ps, sum_sq: pq }, Stats::Values { total: lt, sum: ls, sum_sq: lq }) => {
            Stats::Values { total: pt - lt, sum: ps - ls, sum_sq: pq - lq }
        }
        _ => parent.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hyperparameters::Task;

    /// `n` rows of two features; the class is which third of feature 0 a row falls in, feature 1 is noise.
    fn thirds(n: usize) -> Dataset {
        let mut rng = Rng::new(1);
        let mut labels = Vec::new();
        let mut rows = Vec::new();
        for i in 0..n {
            let x = i as f32 / n as f32;
            labels.push(format!("c{}", (x * 3.0) as usize));
            rows.extend([x, (rng.below(1000) as f32) / 10.0]);
        }
        Dataset::from_rows(labels, &rows, 2, Task::Classification).unwrap()
    }

    fn params() -> TreeParams {
        TreeParams {
            max_depth: None,
            max_leaf_nodes: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 2,
            seed: 0,
        }
    }

    fn fit(data: &Dataset, params: TreeParams) -> Tree {
        grow(data, &presort(data), &vec![1.0; data.n_rows], &params)
    }

    fn leaf_sizes(tree: &Tree, data: &Dataset) -> Vec<usize> {
        let mut sizes = vec![0; tree.nodes.len()];
        let mut row = Vec::new();
        for i in 0..data.n_rows {
            data.row(i, &mut row);
            let mut node = 0;
            while tree.nodes[node].feature >= 0 {
                let n = &tree.nodes[node];
                node = if row[n.feature as usize] <= n.threshold { n.left } else { n.right } as usize;
            }
            sizes[node] += 1;
        }
        tree.nodes.iter().zip(sizes).filter(|(n, _)| n.feature < 0).map(|(_, s)| s).collect()
    }

    #[test]
    fn pure_thirds_need_exactly_three_leaves_on_the_informative_feature() {
        let data = thirds(300);
        let tree = fit(&data, params());
        assert_eq!(tree.leaves(), 3);
        assert!(tree.nodes.iter().all(|n| n.feature <= 0));
        assert!(tree.is_well_formed(2));
        assert_eq!(leaf_sizes(&tree, &data), [100, 100, 100]);
    }

    #[test]
    fn limits_are_respected() {
        let data = thirds(301);
        let stump = fit(&data, TreeParams { max_depth: Some(1), ..params() });
        assert_eq!(stump.nodes.len(), 3);
        let capped = fit(&data, TreeParams { max_leaf_nodes: Some(2), ..params() });
        assert_eq!(capped.leaves(), 2);
        let wide = fit(&data, TreeParams { min_samples_leaf: 120, ..params() });
        assert!(leaf_sizes(&wide, &data).iter().all(|s| *s >= 120));
        let unsplit = fit(&data, TreeParams { min_samples_split: 302, ..params() });
        assert_eq!(unsplit.leaves(), 1);
    }

    #[test]
    fn thresholds_fall_between_neighbouring_values() {
        assert_eq!(midpoint(1.0, 2.0), 1.5);
        assert_eq!(midpoint(1.0, f32::from_bits(1.0f32.to_bits() + 1)), 1.0);
        assert_eq!(midpoint(-3e38, 3e38), 0.0);
    }
}
