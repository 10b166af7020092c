//! Per-variant counters and a latency histogram, updated with relaxed atomics on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Upper bounds of the latency buckets, in microseconds (Prometheus `le`, the last is +Inf).
pub const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// What a variant has answered since it started serving.
#[derive(Debug, Default)]
pub struct Stats {
    invocations: AtomicU64,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
    latency_sum_us: AtomicU64,
    /// When the last request was answered (ms since the epoch), 0 for never.
    last_ms: AtomicU64,
    /// Counts per bucket (not cumulative); index `BUCKETS_US.len()` is past the last bound.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub invocations: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub latency_sum_us: u64,
    /// Per-bucket counts, as in [`Stats`].
    pub buckets: Vec<u64>,
}

impl Stats {
    /// Counts one answered request.
    pub fn record(&self, status: u16, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.invocations.fetch_add(1, Ordering::Relaxed);
        match status {
            500..=599 => self.errors_5xx.fetch_add(1, Ordering::Relaxed),
            400..=499 => self.errors_4xx.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
        let bucket = BUCKETS_US.iter().position(|&bound| micros <= bound).unwrap_or(BUCKETS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// When the last request was answered (ms since the epoch), if any was.
    pub fn last_invoked_ms(&self) -> Option<u64> {
        Some(self.last_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            invocations: self.invocations.load(Ordering::Relaxed),
            errors_4xx: self.errors_4xx.load(Ordering::Relaxed),
            errors_5xx: self.errors_5xx.load(Ordering::Relaxed),
            latency_sum_us: self.latency_sum_us.load(Ordering::Relaxed),
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Snapshot {
    /// Share of invocations that failed on the model's side (its 5xx, timeouts, no answer), 0 with no traffic.
    pub fn error_rate(&self) -> f64 {
        if self.invocations == 0 { 0.0 } else { self.errors_5xx as f64 / self.invocations as f64 }
    }

    /// The bucket bound under which `quantile` of the latencies fall (an upper estimate), in milliseconds.
    pub fn latency_quantile_ms(&self, quantile: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (quantile * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                let bound = BUCKETS_US.get(index).copied().unwrap_or(u64::MAX);
                return Some(bound as f64 / 1000.0);
            }
        }
        None
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            invocations: self.invocations.saturating_sub(earlier.invocations),
            errors_4xx: self.errors_4xx.saturating_sub(earlier.errors_4xx),
            errors_5xx: self.errors_5xx.saturating_sub(earlier.errors_5xx),
            latency_sum_us: self.latency_sum_us.saturating_sub(earlier.latency_sum_us),
            buckets: self.buckets.iter().zip(&earlier.buckets).map(|(a, b)| a.saturating_sub(*b)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_estimates_quantiles() {
        let stats = Stats::default();
        for _ in 0..98 {
            stats.record(200, Duration::from_micros(300));
        }
        stats.record(404, Duration::from_millis(3));
        stats.record(500, Duration::from_millis(40));
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.invocations, snapshot.errors_4xx, snapshot.errors_5xx), (100, 1, 1));
        assert_eq!(snapshot.error_rate(), 0.01);
        assert_eq!(snapshot.latency_quantile_ms(0.5), Some(0.5));
        assert_eq!(snapshot.latency_quantile_ms(0.99), Some(5.0));
        assert_eq!(snapshot.latency_quantile_ms(1.0), Some(50.0));
        assert_eq!(snapshot.since(&snapshot).invocations, 0);
    }
}
