//! `GET /metrics`: every variant's counters and latency histogram in Prometheus' text format.

use std::fmt::Write;

use serde::Serialize;

use crate::{BUCKETS_US, Router};

/// A variant as the API shows it: what it serves, its share of traffic, and what it has answered.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct VariantView {
    pub name: String,
    pub model: String,
    pub weight: f64,
    pub instances: usize,
    /// Each instance with what the health check last saw of it.
    pub instance_health: Vec<crate::InstanceView>,
    pub invocations: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// When it last answered a request (ms since the epoch).
    pub last_invoked_ms: Option<u64>,
    /// Ground truth sent back for its answers.
    pub labelled: u64,
    pub correct: u64,
    pub accuracy: Option<f64>,
    /// For a multi-model variant: what its cache holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<crate::CacheView>,
}

impl Router {
    /// The Prometheus exposition of every endpoint's variants.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP sagebrush_invocations_total Requests a variant answered.");
        let _ = writeln!(out, "# TYPE sagebrush_invocations_total counter");
        let rows = self.variant_snapshots();
        for (labels, s) in &rows {
            let _ = writeln!(out, "sagebrush_invocations_total{{{labels}}} {}", s.invocations);
        }
        let _ = writeln!(out, "# HELP sagebrush_invocation_errors_total Requests answered with a 4xx or 5xx status.");
        let _ = writeln!(out, "# TYPE sagebrush_invocation_errors_total counter");
        for (labels, s) in &rows {
            let _ = writeln!(out, "sagebrush_invocation_errors_total{{{labels},class=\"4xx\"}} {}", s.errors_4xx);
            let _ = writeln!(out, "sagebrush_invocation_errors_total{{{labels},class=\"5xx\"}} {}", s.errors_5xx);
        }
        let _ = writeln!(out, "# HELP sagebrush_invocation_seconds Time from request to answer, as the router saw it.");
        let _ = writeln!(out, "# TYPE sagebrush_invocation_seconds histogram");
        for (labels, s) in &rows {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_US.iter().zip(&s.buckets) {
                cumulative += count;
                let le = *bound as f64 / 1e6;
                let _ = writeln!(out, "sagebrush_invocation_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let total: u64 = s.buckets.iter().sum();
            let _ = writeln!(out, "sagebrush_invocation_seconds_bucket{{{labels},le=\"+Inf\"}} {total}");
            let _ = writeln!(out, "sagebrush_invocation_seconds_sum{{{labels}}} {}", s.latency_sum_us as f64 / 1e6);
            let _ = writeln!(out, "sagebrush_invocation_seconds_count{{{labels}}} {total}");
        }
        out
    }

    /// The variants of an endpoint, empty when it is not served.
    pub fn variants(&self, endpoint: &str) -> Vec<VariantView> {
        let Some(endpoint) = self.get(endpoint) else { return Vec::new() };
        endpoint
            .variants
            .iter()
            .map(|(variant, weight)| {
                let s = variant.stats.snapshot();
                let accuracy = variant.accuracy.view();
                VariantView {
                    name: variant.name.to_string(),
                    model: variant.model.clone(),
                    weight: *weight,
                    instances: variant.instances.len(),
                    instance_health: variant.instances.iter().map(|i| i.view()).collect(),
                    invocations: s.invocations,
                    errors_4xx: s.errors_4xx,
                    errors_5xx: s.errors_5xx,
                    p50_ms: s.latency_quantile_ms(0.5),
                    p99_ms: s.latency_quantile_ms(0.99),
                    last_invoked_ms: variant.stats.last_invoked_ms(),
                    labelled: accuracy.labelled,
                    correct: accuracy.correct,
                    accuracy: accuracy.rate(),
                    models: variant.instances.iter().find_map(|i| match i.as_ref() {
                        crate::Instance::MultiModel(cache) => Some(cache.view()),
                        crate::Instance::MultiModelServer { cache, .. } => Some(cache.view()),
                        _ => None,
                    }),
                }
            })
            .collect()
    }

    fn variant_snapshots(&self) -> Vec<(String, crate::Snapshot)> {
        let table = self.table.load();
        let mut names: Vec<&String> = table.keys().collect();
        names.sort();
        let mut rows = Vec::new();
        for name in names {
            for (variant, _) in &table[name].variants {
                let labels = format!(
                    "endpoint=\"{}\",variant=\"{}\",model=\"{}\"",
                    escape(name),
                    escape(&variant.name),
                    escape(&variant.model)
                );
                rows.push((labels, variant.stats.snapshot()));
            }
        }
        rows
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
