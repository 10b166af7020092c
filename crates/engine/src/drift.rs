//! Drift: how far an endpoint's recent requests have moved from the data its model was trained
//! on, as the population stability index (PSI) of each feature.
//!
//! The baseline is taken when the model is trained, from the `training` channel (header-less CSV,
//! label in column 0, as SageMaker's built-in algorithms read it): for each feature, its deciles
//! (the values at rank ⌊k·n/10⌋ of the sorted column, k = 1..9, duplicates dropped) and the share
//! of training rows in each bin between them. A value `x` falls in bin `i` when `i` edges are
//! `<= x` (numpy's `searchsorted(edges, x, side="right")`). A check bins the newest captured rows
//! of the endpoint the same way, and PSI = Σ (actual − expected) · ln(actual / expected), each
//! share floored at [`FLOOR`] so an empty bin counts as nearly empty rather than infinitely far.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Engine, Error};

/// Bins per feature (fewer when deciles coincide).
pub const BINS: usize = 10;
/// The smallest share a bin counts as.
pub const FLOOR: f64 = 1e-4;

/// What the training channel looked like, per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Baseline {
    /// Training rows it was taken from.
    pub rows: usize,
    pub features: Vec<FeatureBaseline>,
}

/// One feature's bins in the training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureBaseline {
    /// The inner bin edges, ascending: `edges.len() + 1` bins.
    pub edges: Vec<f64>,
    /// The share of training rows in each bin.
    pub expected: Vec<f64>,
}

/// An endpoint's drift now: each feature of its newest captured rows against the baseline of the
/// model version it serves.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftReport {
    pub endpoint: String,
    pub model_group: String,
    pub model_version: i64,
    /// Captured rows compared: the newest, up to `window`.
    pub rows: usize,
    pub window: usize,
    /// Captured rows left out: not `text/csv`, or not as many numbers as the model has features.
    pub skipped: usize,
    /// A feature whose PSI is above this has drifted.
    pub threshold: f64,
    /// Each feature's drift; empty when no rows were captured.
    pub features: Vec<FeatureDrift>,
}

/// One feature's drift.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureDrift {
    /// 0 for the first feature (column 1 of the training file).
    pub feature: usize,
    pub psi: f64,
    pub drifted: bool,
    pub edges: Vec<f64>,
    /// The share of training rows in each bin.
    pub expected: Vec<f64>,
    /// The share of captured rows in each bin.
    pub actual: Vec<f64>,
}

impl Baseline {
    /// The baseline of features given column by column; `None` with no rows.
    pub fn of_columns(columns: &[Vec<f64>]) -> Option<Baseline> {
        let rows = columns.first()?.len();
        if rows == 0 {
            return None;
        }
        let features = columns
            .iter()
            .map(|column| {
                let mut sorted = column.clone();
                sorted.sort_by(f64::total_cmp);
                let mut edges: Vec<f64> = (1..BINS).map(|k| sorted[k * sorted.len() / BINS]).collect();
                edges.dedup();
                let expected = shares(&edges, column);
                FeatureBaseline { edges, expected }
            })
            .collect();
        Some(Baseline { rows, features })
    }

    /// The baseline of a training channel: a CSV file, or a folder of them, label in column 0.
    pub fn of_channel(path: &Path) -> Result<Baseline, String> {
        let mut files = Vec::new();
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            files.sort();
        } else {
            files.push(path.to_owned());
        }
        let mut columns: Vec<Vec<f64>> = Vec::new();
        for file in &files {
            let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&text[..]);
            for (line, record) in reader.records().enumerate() {
                let record = record.map_err(|e| format!("{}: {e}", file.display()))?;
                let features = record.len().saturating_sub(1);
                if columns.is_empty() {
                    columns = vec![Vec::new(); features];
                }
                if features == 0 || features != columns.len() {
                    let want = columns.len() + 1;
                    return Err(format!("{}:{}: {} columns, not {want}", file.display(), line + 1, record.len()));
                }
                for (column, field) in columns.iter_mut().zip(record.iter().skip(1)) {
                    let value = number(field).ok_or_else(|| {
                        format!(
                            "{}:{}: `{field}` is not a number; drift is measured on numeric features",
                            file.display(),
                            line + 1
                        )
                    })?;
                    column.push(value);
                }
            }
        }
        Baseline::of_columns(&columns).ok_or_else(|| format!("{}: no rows", path.display()))
    }

    /// Compares captured rows (row-major, `self.features.len()` values each) with the baseline.
    pub fn compare(&self, rows: &[f64], threshold: f64) -> Vec<FeatureDrift> {
        let width = self.features.len().max(1);
        self.features
            .iter()
            .enumerate()
            .map(|(feature, baseline)| {
                let column: Vec<f64> = rows.iter().skip(feature).step_by(width).copied().collect();
                let actual = shares(&baseline.edges, &column);
                let psi = psi(&baseline.expected, &actual);
                FeatureDrift {
                    feature,
                    psi,
                    drifted: psi > threshold,
                    edges: baseline.edges.clone(),
                    expected: baseline.expected.clone(),
                    actual,
                }
            })
            .collect()
    }
}

/// The share of `values` in each of the `edges.len() + 1` bins.
fn shares(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    for &value in values {
        counts[edges.partition_point(|&edge| edge <= value)] += 1;
    }
    let total = values.len().max(1) as f64;
    counts.into_iter().map(|count| count as f64 / total).collect()
}

/// The population stability index of `actual` against `expected` shares.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(FLOOR), a.max(FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

fn number(field: &str) -> Option<f64> {
    field.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// One line of a capture file, as far as drift reads it.
#[derive(Deserialize)]
struct Captured<'a> {
    time_ms: i64,
    #[serde(borrow)]
    request: CapturedRequest<'a>,
}

#[derive(Deserialize)]
struct CapturedRequest<'a> {
    #[serde(borrow)]
    content_type: Cow<'a, str>,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

/// The newest captured rows of a capture folder, oldest first: at most `window` of them, each
/// `width` numbers, captured after `since` (ms); and how many rows were left out.
pub(crate) fn captured_rows(dir: &Path, width: usize, window: usize, since: i64) -> Result<(Vec<f64>, usize), Error> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("capture-")))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(crate::error::io_error(dir)(e)),
    };
    // Their names sort by time; the newest files are read first until the window is full.
    files.sort();
    let mut chunks: Vec<Vec<f64>> = Vec::new();
    let (mut have, mut skipped) = (0usize, 0usize);
    for file in files.iter().rev() {
        let text = std::fs::read(file).map_err(crate::error::io_error(file))?;
        let mut values = Vec::new();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Ok(captured) = serde_json::from_slice::<Captured>(line) else {
                skipped += 1;
                continue;
            };
            if captured.time_ms <= since {
                continue;
            }
            if !captured.request.content_type.starts_with("text/csv") {
                skipped += 1;
                continue;
            }
            for row in captured.request.body.lines().filter(|l| !l.trim().is_empty()) {
                let start = values.len();
                let numeric = row.split(',').all(|field| number(field).map(|value| values.push(value)).is_some());
                if !numeric || values.len() - start != width {
                    values.truncate(start);
                    skipped += 1;
                }
            }
        }
        have += values.len() / width.max(1);
        chunks.push(values);
        if have >= window {
            break;
        }
    }
    let mut rows: Vec<f64> = chunks.into_iter().rev().flatten().collect();
    let excess = have.saturating_sub(window) * width;
    rows.drain(..excess);
    Ok((rows, skipped))
}

impl Engine {
    /// The drift of `endpoint`'s newest `window` captured rows (after `since`, ms) against the
    /// training baseline of the model version it deployed last.
    pub async fn drift(
        &self,
        endpoint: &names::Name,
        window: usize,
        since: i64,
        threshold: f64,
    ) -> Result<DriftReport, Error> {
        let Some(record) = self.store().endpoint(endpoint).await? else {
            return Err(Error::Store(store::Error::NotFound(format!("no endpoint {endpoint}"))));
        };
        let store::EndpointKind::Model { model_group, model_version } = record.kind else {
            return Err(Error::Invalid(format!(
                "{endpoint} serves {}, not one model version; drift compares a model's requests with its training data",
                record.kind.serves()
            )));
        };
        let version = self.store().model_version(&model_group, model_version).await?;
        let baseline = match version.lineage.0.get("baseline") {
            Some(value) if !value.is_null() => serde_json::from_value::<Baseline>(value.clone())
                .map_err(|e| Error::Invalid(format!("{model_group} v{model_version}: its drift baseline: {e}")))?,
            _ => {
                return Err(Error::Invalid(format!(
                    "{model_group} v{model_version} has no drift baseline: its training channel was not a CSV of \
                     numbers (label first), or it was registered before sagebrush took one; run its pipeline again"
                )));
            }
        };
        let dir = self.home().capture_dir(endpoint);
        let width = baseline.features.len();
        let (rows, skipped) = tokio::task::spawn_blocking(move || captured_rows(&dir, width, window, since))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        // PSI over zero rows is the floor's artefact (every bin empty), not a shift: compare nothing.
        let features = if rows.is_empty() { Vec::new() } else { baseline.compare(&rows, threshold) };
        Ok(DriftReport {
            endpoint: endpoint.to_string(),
            model_group,
            model_version,
            rows: rows.len() / width.max(1),
            window,
            skipped,
            threshold,
            features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_data_has_no_drift_and_shifted_data_has_a_lot() {
        let column: Vec<f64> = (0..1000).map(|i| (i % 97) as f64).collect();
        let baseline = Baseline::of_columns(std::slice::from_ref(&column)).unwrap();
        assert_eq!(baseline.features[0].edges.len(), 9);
        assert!((baseline.features[0].expected.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let same = baseline.compare(&column, pipeline::DEFAULT_DRIFT_THRESHOLD);
        assert_eq!(same[0].psi, 0.0);
        assert!(!same[0].drifted);
        let shifted: Vec<f64> = column.iter().map(|v| v + 50.0).collect();
        let moved = baseline.compare(&shifted, pipeline::DEFAULT_DRIFT_THRESHOLD);
        assert!(moved[0].psi > 1.0, "{}", moved[0].psi);
        assert!(moved[0].drifted);
    }

    #[test]
    fn ties_make_fewer_bins_and_values_on_an_edge_go_above_it() {
        let baseline = Baseline::of_columns(&[vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0]]).unwrap();
        assert_eq!(baseline.features[0].edges, [1.0, 2.0, 3.0]);
        assert_eq!(baseline.features[0].expected, [0.0, 0.8, 0.1, 0.1]);
        assert_eq!(shares(&[1.0, 2.0], &[0.5, 1.0, 2.0, 9.0]), [0.25, 0.25, 0.5]);
    }

    #[test]
    fn psi_floors_empty_bins() {
        // Everything moved from the first bin to the second.
        let value = psi(&[1.0, 0.0], &[0.0, 1.0]);
        let expected = 2.0 * (1.0 - FLOOR) * (1.0 / FLOOR).ln();
        assert!((value - expected).abs() < 1e-12, "{value} {expected}");
    }

    #[test]
    fn the_newest_rows_are_read_after_the_cutoff_and_bad_ones_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let line = |ms: i64, body: &str| {
            format!("{}\n", serde_json::json!({"time_ms": ms, "request": {"content_type": "text/csv", "body": body}}))
        };
        let old = line(1, "1,1\n") + &line(2, "2,2\n3,3\n");
        let new = line(3, "4,4\n") + &line(4, "x,5\n6\n") + &line(5, "7,7") + "not json\n";
        std::fs::write(dir.path().join("capture-0000000000001-000001.jsonl"), old).unwrap();
        std::fs::write(dir.path().join("capture-0000000000003-000002.jsonl"), new).unwrap();
        let (rows, skipped) = captured_rows(dir.path(), 2, 3, 0).unwrap();
        assert_eq!(rows, [3.0, 3.0, 4.0, 4.0, 7.0, 7.0]);
        assert_eq!(skipped, 3);
        let (rows, _) = captured_rows(dir.path(), 2, 100, 2).unwrap();
        assert_eq!(rows, [4.0, 4.0, 7.0, 7.0], "rows at or before the cutoff are left out");
        assert_eq!(captured_rows(&dir.path().join("none"), 2, 10, 0).unwrap().0, Vec::<f64>::new());
    }
}
