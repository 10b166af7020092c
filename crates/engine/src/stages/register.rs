//! The register stage: the latest trained model becomes a version in a model group, with its lineage.

use store::{ModelVersionRecord, NewModelVersion};

use super::outputs::{ImageOutput, RegisterOutput, StageOutput};
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    model_group: &str,
    log: &mut Log,
) -> Result<RegisterOutput, StageFailure> {
    let version = register(context, model_group, log).await?;
    Ok(RegisterOutput { model_group: version.model_group, model_version: version.version })
}

/// The model version this run registered last; with no register stage, the latest trained model is registered in the pipeline's group.
pub(crate) async fn latest_or_register(
    context: &mut RunContext,
    log: &mut Log,
) -> Result<ModelVersionRecord, StageFailure> {
    // A register stage, or a deploy that registered implicitly, already made a version in this run.
    if let Some((group, version)) = context.outputs.iter().rev().find_map(|(_, o)| o.registered()) {
        return context.engine.store().model_version(group, version).await.map_err(StageFailure::store);
    }
    let group = context.pipeline.name.clone();
    register(context, &group, log).await
}

async fn register(
    context: &mut RunContext,
    model_group: &str,
    log: &mut Log,
) -> Result<ModelVersionRecord, StageFailure> {
    let Some(trained) = context.latest(StageOutput::train) else {
        return Err(StageFailure::failed("no model to register: add a `train` stage before this one"));
    };
    let commit = context.latest(StageOutput::checkout).and_then(|c| c.commit.as_deref());
    let lineage = serde_json::json!({
        "project": context.run.project,
        "run": context.run.number,
        "training_job": trained.job,
        "commit": commit,
        "data": trained.data,
        "algorithm": trained.algorithm,
        "image": image_of(context),
        "hyperparameters": trained.hyperparameters,
        "metrics": trained.metrics,
        "parameters": context.run.parameters,
        "baseline": trained.baseline,
    });
    let version = context
        .engine
        .store()
        .register_model(NewModelVersion {
            model_group,
            run_id: context.run.id,
            algorithm: &trained.algorithm,
            artifact_uri: &trained.model_uri,
            artifact_sha256: &trained.model_sha256,
            lineage: &lineage,
            approval_status: store::ModelApprovalStatus::PendingManualApproval,
        })
        .await
        .map_err(StageFailure::store)?;
    line(log, &format!("registered {} version {}", version.model_group, version.version)).await;
    Ok(version)
}

/// What the run built its image into (size, digest, SBOM): the build stage's output, or the train stage's for the built-in image.
pub(crate) fn image_of(context: &RunContext) -> Option<&ImageOutput> {
    context.latest(StageOutput::build).or_else(|| context.latest(StageOutput::train).and_then(|t| t.image.as_ref()))
}
