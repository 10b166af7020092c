//! One module per stage kind. Each takes the run's context and the stage's log, and returns its typed output.

mod ab_test;
mod approval;
pub(crate) mod build;
mod champion;
mod checkout;
pub(crate) mod deploy;
pub(crate) mod deploy_managed;
mod gate;
pub(crate) mod outputs;
mod register;
mod shell;
mod smoke_test;
mod train;
pub(crate) mod train_managed;

use pipeline::{Stage, StageKind};
use tokio::io::AsyncWriteExt;

pub(crate) use outputs::StageOutput;

use crate::run::RunContext;

/// Why a stage did not succeed.
pub(crate) enum StageFailure {
    /// The run was cancelled while the stage ran.
    Cancelled,
    /// An approval stage asked for a decision; the run waits for it.
    Waiting,
    /// The stage failed; `output` keeps what it had found (a training job's name, a smoke test's accuracy).
    Failed { reason: String, output: serde_json::Value },
}

impl StageFailure {
    pub fn failed(reason: impl Into<String>) -> StageFailure {
        StageFailure::Failed { reason: reason.into(), output: serde_json::json!({}) }
    }

    pub fn store(e: store::Error) -> StageFailure {
        StageFailure::failed(e.to_string())
    }
}

impl From<crate::Error> for StageFailure {
    fn from(e: crate::Error) -> StageFailure {
        StageFailure::failed(e.to_string())
    }
}

pub(crate) type Log = tokio::fs::File;

/// Runs one stage.
pub(crate) async fn run(context: &mut RunContext, stage: &Stage, log: &mut Log) -> Result<StageOutput, StageFailure> {
    match &stage.kind {
        StageKind::Checkout { repo, rev } => {
            checkout::run(context, repo.as_deref(), rev.as_deref(), log).await.map(StageOutput::Checkout)
        }
        StageKind::Build { context: build_context, registry } => {
            let image = match &context.pipeline.algorithm {
                Some(pipeline::Algorithm::Image { image }) => image.clone(),
                _ => return Err(StageFailure::failed("a build stage needs [algorithm] image = \"<name>\"")),
            };
            build::run(context, &image, build_context, registry, log).await.map(StageOutput::Build)
        }
        StageKind::Train { .. } => train::run(context, stage, log).await.map(StageOutput::Train),
        StageKind::Register { model_group } => {
            register::run(context, model_group, log).await.map(StageOutput::Register)
        }
        StageKind::Deploy { endpoint, capture_percent, .. } => {
            let output = deploy::run(context, stage, log).await?;
            // Capture is this machine's router's; a SageMaker endpoint captures nothing here.
            if !matches!(output, outputs::DeployOutput::SageMaker { .. }) {
                context.engine.set_capture(endpoint, *capture_percent).await?;
            }
            Ok(StageOutput::Deploy(output))
        }
        StageKind::SmokeTest { endpoint, data, min_accuracy } => {
            smoke_test::run(context, endpoint, data, *min_accuracy, log).await.map(StageOutput::SmokeTest)
        }
        StageKind::AbTest { endpoint, control, challenger, min_samples, confidence } => {
            ab_test::run(context, endpoint, control, challenger, *min_samples, *confidence, log)
                .await
                .map(StageOutput::AbTest)
        }
        StageKind::Gate { require, deny_packages } => {
            gate::run(context, require, deny_packages, log).await.map(StageOutput::Gate)
        }
        StageKind::Shell { command } => shell::run(context, command, log).await.map(StageOutput::Shell),
        StageKind::Champion { endpoint, candidate, data, metric, margin } => {
            champion::run(context, endpoint, candidate, data, *metric, *margin, log).await.map(StageOutput::Champion)
        }
        StageKind::Approval { reject_after } => {
            approval::ask(context, stage, *reject_after, log).await?;
            Err(StageFailure::Waiting)
        }
    }
}

/// Puts back what a reused stage left in the context (a retry reuses a checkout's source folder).
pub(crate) fn restore(context: &mut RunContext, output: &StageOutput) {
    if let Some(checkout) = output.checkout() {
        context.source_dir = checkout.source.clone();
    }
}

/// Writes one line to a stage log; a log that cannot be written must not fail the stage.
pub(crate) async fn line(log: &mut Log, text: &str) {
    let _ = log.write_all(text.as_bytes()).await;
    let _ = log.write_all(b"\n").await;
}
