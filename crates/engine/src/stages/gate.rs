//! The gate stage: metric thresholds on what this run measured; a miss stops the run before production.

use pipeline::Threshold;

use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    require: &[Threshold],
    log: &mut Log,
) -> Result<serde_json::Value, StageFailure> {
    let metrics = measured(context);
    let mut checked = serde_json::Map::new();
    let mut misses = Vec::new();
    for threshold in require {
        let Some(value) = metrics.get(&threshold.metric).and_then(|v| v.as_f64()) else {
            let known: Vec<&String> = metrics.keys().collect();
            return Err(StageFailure::failed(format!(
                "metric `{}` was not measured in this run; measured: {}",
                threshold.metric,
                if known.is_empty() { "none".to_owned() } else { format!("{known:?}") }
            )));
        };
        checked.insert(threshold.metric.clone(), value.into());
        let below = threshold.min.is_some_and(|min| value < min);
        let above = threshold.max.is_some_and(|max| value > max);
        let verdict = if below || above { "FAIL" } else { "ok" };
        line(
            log,
            &format!("{verdict}: {} = {value} (min {:?}, max {:?})", threshold.metric, threshold.min, threshold.max),
        )
        .await;
        if below {
            misses.push(format!(
                "{} = {value} is below the minimum {}",
                threshold.metric,
                threshold.min.unwrap_or_default()
            ));
        }
        if above {
            misses.push(format!(
                "{} = {value} is above the maximum {}",
                threshold.metric,
                threshold.max.unwrap_or_default()
            ));
        }
    }
    let output = serde_json::json!({ "metrics": checked });
    if misses.is_empty() { Ok(output) } else { Err(StageFailure::Failed { reason: misses.join("; "), output }) }
}

/// Training metrics by their definition names, plus `<smoke-test stage>:accuracy` for each smoke test.
fn measured(context: &RunContext) -> serde_json::Map<String, serde_json::Value> {
    let mut metrics = serde_json::Map::new();
    if let Some(serde_json::Value::Object(trained)) = context.latest_output("train").and_then(|t| t.get("metrics")) {
        metrics.extend(trained.clone());
    }
    for (name, output) in &context.outputs {
        if let Some(accuracy) = output.get("accuracy") {
            metrics.insert(format!("{name}:accuracy"), accuracy.clone());
        }
    }
    metrics
}
