//! Shifting traffic step by step to a new variant, and the alarms that roll it back.

use std::sync::Arc;
use std::time::Duration;

use pipeline::{DeployPolicy, Traffic};
use router::{Endpoint, Variant};
use serde::Serialize;

/// A traffic shift of an endpoint as this process runs it: the step it is at, or how it ended.
/// Kept in memory until the endpoint's next shift (a restart forgets it; the deploying run keeps
/// its reason).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    pub endpoint: String,
    /// The model traffic moves to, e.g. `iris v2`.
    pub model: String,
    /// `canary` or `linear`.
    pub traffic: &'static str,
    /// The step it is at (1-based) of `steps`, and the new model's share of traffic in it (0 to 1).
    pub step: usize,
    pub steps: usize,
    pub share: f64,
    /// How long each step is watched, and when this step's watch ends (ms).
    pub bake_seconds: f64,
    pub bake_until: i64,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub state: RolloutState,
    /// The alarm that rolled it back.
    pub reason: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    InProgress,
    Completed,
    RolledBack,
}

impl Rollout {
    pub(super) fn start(endpoint: &str, model: &str, policy: &DeployPolicy) -> Rollout {
        let now = store::now_ms();
        Rollout {
            endpoint: endpoint.to_owned(),
            model: model.to_owned(),
            traffic: match policy.traffic {
                Traffic::Linear { .. } => "linear",
                _ => "canary",
            },
            step: 0,
            steps: policy.traffic.steps().len(),
            share: 0.0,
            bake_seconds: policy.bake.as_secs_f64(),
            bake_until: now,
            max_error_rate: policy.max_error_rate,
            max_p99_ms: policy.max_p99_ms,
            state: RolloutState::InProgress,
            reason: None,
            started_at: now,
            finished_at: None,
        }
    }

    pub(super) fn at_step(&mut self, step: usize, share: f64) {
        self.step = step;
        self.share = share;
        self.bake_until = store::now_ms() + i64::try_from((self.bake_seconds * 1000.0) as u64).unwrap_or(i64::MAX);
    }

    pub(super) fn end(&mut self, state: RolloutState, reason: Option<String>) {
        self.state = state;
        self.reason = reason;
        self.finished_at = Some(store::now_ms());
    }
}

/// `previous`'s variants with their weights scaled to `1 - share`, and `fresh` with `share` of the traffic.
pub(super) fn shifted(previous: &Endpoint, fresh: &Arc<Variant>, share: f64) -> Endpoint {
    let total: f64 = previous.variants.iter().map(|(_, w)| w.max(0.0)).sum::<f64>().max(f64::MIN_POSITIVE);
    let mut variants: Vec<(Arc<Variant>, f64)> =
        previous.variants.iter().map(|(v, w)| (v.clone(), w.max(0.0) * (1.0 - share))).collect();
    variants.push((fresh.clone(), total * share));
    Endpoint { name: previous.name.clone(), variants }
}

/// Watches `variant` for `policy.bake`; the alarm that fired, if one did.
pub(super) async fn bake(variant: &Variant, policy: &DeployPolicy) -> Option<String> {
    let start = variant.stats.snapshot();
    let deadline = tokio::time::Instant::now() + policy.bake;
    loop {
        let window = variant.stats.snapshot().since(&start);
        if let Some(alarm) = alarm(policy, &window, &variant.model) {
            return Some(alarm);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
    }
}

pub(super) fn alarm(policy: &DeployPolicy, window: &router::Snapshot, model: &str) -> Option<String> {
    if window.invocations == 0 {
        return None;
    }
    let n = window.invocations;
    if let Some(max) = policy.max_error_rate
        && window.error_rate() > max
    {
        return Some(format!(
            "{model} answered {} of {n} requests with an error, above max_error_rate {max}",
            window.errors_5xx
        ));
    }
    if let Some(max) = policy.max_p99_ms
        && let Some(p99) = window.latency_quantile_ms(0.99)
        && p99 > max
    {
        return Some(format!("{model}'s p99 latency over {n} requests is up to {p99} ms, above max_p99_ms {max}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use names::Name;
    use pipeline::Traffic;

    fn variant(name: &str) -> Arc<Variant> {
        Arc::new(Variant::new(Name::parse(name).unwrap(), format!("{name} v1"), Vec::new()))
    }

    fn policy(traffic: Traffic, bake_ms: u64) -> DeployPolicy {
        DeployPolicy {
            traffic,
            bake: Duration::from_millis(bake_ms),
            max_error_rate: Some(0.1),
            max_p99_ms: Some(50.0),
        }
    }

    #[test]
    fn each_step_gives_the_new_model_its_share_and_scales_the_rest() {
        let (a, b, fresh) = (variant("a"), variant("b"), variant("fresh"));
        let previous = Endpoint { name: Name::parse("prod").unwrap(), variants: vec![(a, 3.0), (b, 1.0)] };
        let shares: Vec<Vec<f64>> = Traffic::Linear { percent: 25.0 }
            .steps()
            .into_iter()
            .map(|share| shifted(&previous, &fresh, share).variants.iter().map(|(_, w)| *w).collect())
            .collect();
        // Weights keep their total (4) and the old variants their 3:1 ratio at every step.
        assert_eq!(shares, [vec![2.25, 0.75, 1.0], vec![1.5, 0.5, 2.0], vec![0.75, 0.25, 3.0], vec![0.0, 0.0, 4.0]]);
        assert_eq!(Traffic::Canary { percent: 10.0 }.steps(), [0.1, 1.0]);
        assert_eq!(Traffic::AllAtOnce.steps(), [1.0]);
    }

    #[test]
    fn an_alarm_fires_past_the_error_rate_or_the_p99_and_not_without_traffic() {
        let quiet = policy(Traffic::Canary { percent: 10.0 }, 0);
        let stats = router::Stats::default();
        assert_eq!(alarm(&quiet, &stats.snapshot(), "m"), None, "no requests, no verdict");
        for _ in 0..19 {
            stats.record(200, Duration::from_millis(1));
        }
        stats.record(500, Duration::from_millis(1));
        assert_eq!(alarm(&quiet, &stats.snapshot(), "m"), None, "1 in 20 is under 10%");
        stats.record(500, Duration::from_millis(1));
        stats.record(503, Duration::from_millis(1));
        let fired = alarm(&quiet, &stats.snapshot(), "m").unwrap();
        assert!(fired.contains("3 of 22") && fired.contains("max_error_rate 0.1"), "{fired}");
        let slow = router::Stats::default();
        for _ in 0..10 {
            slow.record(200, Duration::from_millis(400));
        }
        assert!(alarm(&quiet, &slow.snapshot(), "m").unwrap().contains("max_p99_ms 50"));
    }

    #[tokio::test]
    async fn a_bake_watches_only_what_came_after_it_started() {
        let fresh = variant("fresh");
        // Errors before the step began are not the new step's.
        for _ in 0..10 {
            fresh.stats.record(500, Duration::from_millis(1));
        }
        let step = policy(Traffic::Canary { percent: 10.0 }, 30);
        assert_eq!(bake(&fresh, &step).await, None);
        let watching = {
            let fresh = fresh.clone();
            tokio::spawn(async move { bake(&fresh, &policy(Traffic::Canary { percent: 10.0 }, 5_000)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        fresh.stats.record(500, Duration::from_millis(1));
        let fired = tokio::time::timeout(Duration::from_secs(2), watching).await.unwrap().unwrap();
        assert!(fired.unwrap().contains("1 of 1"), "an alarm ends the bake early");
    }
}
