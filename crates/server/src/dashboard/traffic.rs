//! The last minutes of each variant's traffic: the router's counters read every few seconds, so a
//! page can draw requests per second, p50/p99 latency and the error rate over time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use router::{Router, Snapshot};

/// How often the counters are read, and how many readings are kept (10 minutes).
pub(crate) const INTERVAL: Duration = Duration::from_secs(2);
const KEPT: usize = 300;

/// One reading of every variant's counters.
struct Reading {
    at: i64,
    /// (endpoint, variant, model, counters): during a shift two variants may share a name.
    variants: Vec<(String, String, String, Snapshot)>,
}

/// Traffic over one interval.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    pub at: i64,
    pub per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub error_rate: f64,
}

#[derive(Default)]
pub(crate) struct History {
    readings: Mutex<VecDeque<Reading>>,
}

impl History {
    /// Reads the router's counters every [`INTERVAL`] until the task is aborted.
    pub async fn sample(self: Arc<Self>, router: Arc<Router>) {
        let mut ticks = tokio::time::interval(INTERVAL);
        loop {
            ticks.tick().await;
            self.record(store::now_ms(), read(&router));
        }
    }

    fn record(&self, at: i64, variants: Vec<(String, String, String, Snapshot)>) {
        let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        if readings.len() == KEPT {
            readings.pop_front();
        }
        readings.push_back(Reading { at, variants });
    }

    /// A variant's traffic (the variant of that name serving `model`) between consecutive readings, oldest first.
    pub fn series(&self, endpoint: &str, variant: &str, model: &str) -> Vec<Point> {
        let readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        let find = |reading: &Reading| {
            let found = reading.variants.iter().find(|(e, v, m, _)| e == endpoint && v == variant && m == model);
            found.map(|(_, _, _, s)| s.clone())
        };
        let mut points = Vec::new();
        let mut last: Option<(i64, Snapshot)> = None;
        for reading in readings.iter() {
            let Some(now) = find(reading) else {
                last = None;
                continue;
            };
            if let Some((then, before)) = &last {
                let window = now.since(before);
                let seconds = ((reading.at - then) as f64 / 1000.0).max(0.001);
                points.push(Point {
                    at: reading.at,
                    per_second: window.invocations as f64 / seconds,
                    p50_ms: window.latency_quantile_ms(0.5),
                    p99_ms: window.latency_quantile_ms(0.99),
                    error_rate: window.error_rate(),
                });
            }
            last = Some((reading.at, now));
        }
        points
    }
}

fn read(router: &Router) -> Vec<(String, String, String, Snapshot)> {
    let mut variants = Vec::new();
    for name in router.names() {
        if let Some(endpoint) = router.get(&name) {
            for (variant, _) in &endpoint.variants {
                let (endpoint, model) = (name.to_string(), variant.model.clone());
                variants.push((endpoint, variant.name.to_string(), model, variant.stats.snapshot()));
            }
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(invocations: u64, errors: u64) -> Snapshot {
        let mut buckets = vec![0; router::BUCKETS_US.len() + 1];
        buckets[3] = invocations;
        Snapshot { invocations, errors_4xx: 0, errors_5xx: errors, latency_sum_us: invocations * 900, buckets }
    }

    #[test]
    fn a_series_is_the_traffic_between_readings() {
        let history = History::default();
        let reading = |n, e| vec![("prod".to_owned(), "AllTraffic".to_owned(), "iris v1".to_owned(), snapshot(n, e))];
        history.record(0, reading(0, 0));
        history.record(2000, reading(100, 0));
        history.record(4000, reading(300, 20));
        let points = history.series("prod", "AllTraffic", "iris v1");
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].per_second, 50.0);
        assert_eq!(points[1].per_second, 100.0);
        assert_eq!(points[1].error_rate, 0.1);
        assert_eq!(points[1].p99_ms, Some(1.0));
        assert!(history.series("prod", "B", "iris v1").is_empty());
        assert!(history.series("prod", "AllTraffic", "iris v2").is_empty());
    }
}
