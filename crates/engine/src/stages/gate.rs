//! The gate stage: metric thresholds on what this run measured, and packages its image must not have; a miss stops the run before production.
//!
//! Besides training and smoke-test metrics, a run that built an image measures
//! `image:size_mb` and `image:packages`, so an image-size limit is a threshold too.

use pipeline::Threshold;

use std::collections::BTreeMap;

use super::outputs::{GateOutput, StageOutput};
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    require: &[Threshold],
    deny_packages: &[String],
    log: &mut Log,
) -> Result<GateOutput, StageFailure> {
    let metrics = measured(context);
    let mut checked = BTreeMap::new();
    let mut misses = denied_packages(context, deny_packages, log).await?;
    for threshold in require {
        let Some(&value) = metrics.get(&threshold.metric) else {
            let known: Vec<&String> = metrics.keys().collect();
            return Err(StageFailure::failed(format!(
                "metric `{}` was not measured in this run; measured: {}",
                threshold.metric,
                if known.is_empty() { "none".to_owned() } else { format!("{known:?}") }
            )));
        };
        checked.insert(threshold.metric.clone(), value);
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
    let output = GateOutput { metrics: checked };
    if misses.is_empty() {
        Ok(output)
    } else {
        Err(StageFailure::Failed {
            reason: misses.join("; "),
            output: serde_json::to_value(&output).unwrap_or_default(),
        })
    }
}

/// The denied packages found in the SBOM of the run's image, one miss each.
async fn denied_packages(context: &RunContext, deny: &[String], log: &mut Log) -> Result<Vec<String>, StageFailure> {
    if deny.is_empty() {
        return Ok(Vec::new());
    }
    let Some(uri) = super::register::image_of(context).map(|i| i.sbom_uri.clone()) else {
        return Err(StageFailure::failed(
            "deny_packages needs the SBOM of an image this run built; put the gate after a build stage \
             (or after train with [algorithm] container = true)",
        ));
    };
    let bytes = context.engine.inner.artifacts.get(&uri, None).await.map_err(StageFailure::store)?;
    let sbom: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| StageFailure::failed(format!("reading the SBOM {uri}: {e}")))?;
    let empty = Vec::new();
    let components = sbom["components"].as_array().unwrap_or(&empty);
    let mut misses = Vec::new();
    for name in deny {
        let found = components
            .iter()
            .find(|c| c["type"] == "library" && c["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
        match found {
            Some(component) => {
                let version = component["version"].as_str().unwrap_or("?");
                line(log, &format!("FAIL: the image has the denied package {name} {version}")).await;
                misses.push(format!("the image has the denied package {name} {version}"));
            }
            None => line(log, &format!("ok: no package {name} in the image")).await,
        }
    }
    Ok(misses)
}

/// Training metrics by their definition names, `<smoke-test stage>:accuracy` for each smoke
/// test, and `image:size_mb` and `image:packages` when the run built an image.
fn measured(context: &RunContext) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    if let Some(trained) = context.latest(StageOutput::train) {
        metrics.extend(trained.metrics.clone());
    }
    if let Some(image) = super::register::image_of(context) {
        metrics.insert("image:size_mb".to_owned(), image.size_bytes as f64 / 1e6);
        metrics.insert("image:packages".to_owned(), image.packages as f64);
    }
    for (name, output) in &context.outputs {
        if let Some(smoke) = output.smoke_test() {
            metrics.insert(format!("{name}:accuracy"), smoke.accuracy);
        }
    }
    metrics
}
