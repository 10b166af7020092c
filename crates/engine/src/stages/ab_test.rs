//! The ab-test stage: wait until both variants have enough ground truth, then keep the one that is
//! significantly better (a two-proportion z-test on their accuracy), recording why.

use std::time::Duration;

use names::Name;
use router::{AccuracyView, two_proportion_p_value};

use super::outputs::{AbTestOutput, VariantScore};
use super::{Log, StageFailure, line};
use crate::run::RunContext;

/// How often the stage looks at the counts while it waits.
const POLL: Duration = Duration::from_millis(200);

pub(crate) async fn run(
    context: &mut RunContext,
    endpoint: &Name,
    control: &Name,
    challenger: &Name,
    min_samples: u64,
    confidence: f64,
    log: &mut Log,
) -> Result<AbTestOutput, StageFailure> {
    line(
        log,
        &format!("waiting for {min_samples} labelled answers from each of {control} and {challenger} on {endpoint}"),
    )
    .await;
    let (a, b) = loop {
        let (a, b) = (accuracy(context, endpoint, control)?, accuracy(context, endpoint, challenger)?);
        if a.labelled >= min_samples && b.labelled >= min_samples {
            break (a, b);
        }
        if *context.cancel.borrow() {
            return Err(StageFailure::Cancelled);
        }
        tokio::time::sleep(POLL).await;
    };
    let p_value = two_proportion_p_value(a, b).unwrap_or(1.0);
    let (rate_a, rate_b) = (a.rate().unwrap_or(0.0), b.rate().unwrap_or(0.0));
    let significant = p_value < 1.0 - confidence;
    let summary = format!(
        "{control} {}/{} = {rate_a:.3}, {challenger} {}/{} = {rate_b:.3}, p = {p_value:.4}",
        a.correct, a.labelled, b.correct, b.labelled
    );
    let promote = significant && rate_b > rate_a;
    let (kept, decision, why) = if promote {
        (challenger, "promoted", format!("{challenger} is better at {confidence} confidence ({summary})"))
    } else if significant {
        (control, "rolled back", format!("{control} is better at {confidence} confidence ({summary})"))
    } else {
        (control, "rolled back", format!("no difference at {confidence} confidence ({summary}); keeping {control}"))
    };
    line(log, &format!("{decision}: {why}")).await;
    context.engine.keep_only_variant(endpoint, kept).await?;
    let actor = format!("run {} #{}", context.pipeline.name, context.run.number);
    context.engine.audit(&actor, &format!("keep variant {kept} of {endpoint} (A/B test)"), 200).await;
    let score = |v: AccuracyView, rate| VariantScore { labelled: v.labelled, correct: v.correct, accuracy: rate };
    let output = AbTestOutput {
        endpoint: endpoint.to_string(),
        p_value,
        decision: decision.to_owned(),
        kept: kept.to_string(),
        why: why.clone(),
        variants: [(control.to_string(), score(a, rate_a)), (challenger.to_string(), score(b, rate_b))].into(),
    };
    if promote {
        Ok(output)
    } else {
        let output = serde_json::to_value(&output).unwrap_or_default();
        Err(StageFailure::Failed { reason: format!("ab-test {decision}: {why}"), output })
    }
}

fn accuracy(context: &RunContext, endpoint: &str, variant: &str) -> Result<AccuracyView, StageFailure> {
    let served = context.engine.router().get(endpoint).ok_or_else(|| {
        StageFailure::failed(format!("endpoint {endpoint} is not served; an ab-test runs on the server that serves it"))
    })?;
    let found = served.variants.iter().find(|(v, _)| v.name == variant);
    let (found, _) =
        found.ok_or_else(|| StageFailure::failed(format!("endpoint {endpoint} has no variant {variant}")))?;
    Ok(found.accuracy.view())
}
