//! `champion`: the candidate (the run's test endpoint) and the champion (what prod serves now)
//! answer the same held-out rows; the candidate passes when it is at least as good on the metric,
//! within the margin. Both scores are the stage's output either way.

use pipeline::ChampionMetric;

use super::outputs::ChampionOutput;
use super::smoke_test::{Answers, ask};
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    champion: &str,
    candidate: &str,
    data: &str,
    metric: ChampionMetric,
    margin: f64,
    log: &mut Log,
) -> Result<ChampionOutput, StageFailure> {
    let score = |answers: &Answers| match metric {
        ChampionMetric::Accuracy => Ok(answers.accuracy()),
        ChampionMetric::Rmse => answers.rmse().map_err(StageFailure::failed),
    };
    let candidate_score = score(&ask(context, candidate, data, log).await?)?;
    let name = metric.as_str();
    line(log, &format!("candidate {candidate}: {name} {candidate_score:.4}")).await;
    let served = match super::deploy_managed::hosted_on(&context.resolved, champion) {
        Some(settings) => super::deploy_managed::serves(context, champion, settings).await?,
        None => match context.engine.router().get(champion) {
            Some(served) => Some(served.variants.iter().map(|(v, _)| v.model.clone()).collect::<Vec<_>>().join(", ")),
            None if context.engine.store().endpoint(champion).await.map_err(StageFailure::store)?.is_some() => {
                return Err(StageFailure::failed(format!(
                    "{champion} is recorded but not served by this process, so it cannot answer as the champion; \
                     run through `sagebrush server`"
                )));
            }
            None => None,
        },
    };
    let Some(champion_model) = served else {
        let verdict = format!("no champion: {champion} serves nothing yet, so the candidate passes");
        line(log, &verdict).await;
        let output = ChampionOutput {
            metric: name.to_owned(),
            candidate: candidate_score,
            champion: None,
            champion_model: None,
            margin,
            verdict,
        };
        return Ok(output);
    };
    let champion_score = score(&ask(context, champion, data, log).await?)?;
    line(log, &format!("champion {champion} ({champion_model}): {name} {champion_score:.4}")).await;
    let holds = match metric {
        ChampionMetric::Accuracy => candidate_score >= champion_score - margin,
        ChampionMetric::Rmse => candidate_score <= champion_score + margin,
    };
    let verdict = if holds {
        format!(
            "the candidate's {name} {candidate_score:.4} holds against the champion's {champion_score:.4} (margin {margin})"
        )
    } else {
        format!(
            "the candidate's {name} {candidate_score:.4} is worse than the champion's {champion_score:.4} (margin {margin})"
        )
    };
    line(log, &verdict).await;
    let output = ChampionOutput {
        metric: name.to_owned(),
        candidate: candidate_score,
        champion: Some(champion_score),
        champion_model: Some(champion_model),
        margin,
        verdict: verdict.clone(),
    };
    if holds {
        Ok(output)
    } else {
        Err(StageFailure::Failed { reason: verdict, output: serde_json::to_value(&output).unwrap_or_default() })
    }
}
