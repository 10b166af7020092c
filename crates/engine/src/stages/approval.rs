//! `approval`: the run waits for a person to approve or reject the model version it registered,
//! shown the evidence the run gathered: metrics, the smoke test, the image and the gates passed.

use std::time::Duration;

use pipeline::Stage;
use store::NewApproval;

use super::{Log, StageFailure, line};
use crate::run::RunContext;

/// Records what the approval is for, and puts the run to wait for it.
pub(crate) async fn ask(
    context: &mut RunContext,
    stage: &Stage,
    reject_after: Option<Duration>,
    log: &mut Log,
) -> Result<(), StageFailure> {
    let position = context.resolved.stages.iter().position(|s| s.name == stage.name).unwrap_or(0) as i64;
    let model = context.outputs.iter().rev().find_map(|(_, output)| output.registered());
    let mut evidence = serde_json::Map::new();
    if let Some((group, version)) = model {
        evidence.insert("model".into(), serde_json::json!({ "model_group": group, "model_version": version }));
    }
    let store = context.engine.store().clone();
    if let Ok(run) = store.run_by_id(context.run.id).await
        && let Some(commit) = run.commit_sha
    {
        evidence.insert("commit".into(), commit.into());
    }
    for (name, output) in &context.outputs {
        if let Some(train) = output.train() {
            evidence.insert("metrics".into(), serde_json::to_value(&train.metrics).unwrap_or_default());
        }
        if let Some(smoke) = output.smoke_test() {
            evidence.insert("smoke_test".into(), serde_json::to_value(smoke).unwrap_or_default());
        }
        if let Some(image) = output.build() {
            let shown = serde_json::json!({
                "image": image.reference.as_deref().unwrap_or(&image.image), "digest": image.digest,
                "packages": image.packages, "sbom_sha256": image.sbom_sha256,
            });
            evidence.insert("image".into(), shown);
        }
        if let super::StageOutput::Gate(gate) = output {
            let passed = evidence.entry("gates_passed").or_insert_with(|| serde_json::json!({}));
            passed[name.as_str()] = serde_json::to_value(&gate.metrics).unwrap_or_default();
        }
        if let super::StageOutput::Champion(champion) = output {
            evidence.insert("champion".into(), serde_json::to_value(champion).unwrap_or_default());
        }
    }
    let evidence = serde_json::Value::Object(evidence);
    let expires_at =
        reject_after.map(|after| store::now_ms() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2));
    let asked = NewApproval {
        run_id: context.run.id,
        position,
        stage: stage.name.as_str(),
        model,
        evidence: &evidence,
        expires_at,
    };
    store.request_approval(&asked).await.map_err(StageFailure::store)?;
    let what = model.map_or_else(|| "this run".to_owned(), |(group, version)| format!("{group} v{version}"));
    let (project, number) = (&context.pipeline.name, context.run.number);
    line(log, &format!("waiting for someone to approve {what}: {evidence}")).await;
    line(log, &format!("  sagebrush approve {project} {number} --reason \"...\"   (or reject)")).await;
    Ok(())
}
