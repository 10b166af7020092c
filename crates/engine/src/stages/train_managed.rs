//! A train stage with `backend = "sagemaker"`: the job runs on SageMaker, reading its channels
//! from S3 (a project file is uploaded first, as SageMaker's Python SDK does) and writing its model
//! to the artifact store's S3 prefix, `<prefix>/<job>/output/model.tar.gz`, the same layout a
//! local job's model has. Its statuses go into the store as SageMaker reports them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pipeline::{Channel, Resolved, SageMakerTraining, Stage, StageKind, TrainingBackend};
use runtime::instance::DEFAULT_INSTANCE_TYPE;
use runtime::training::End;
use store::{Location, SecondaryStatus, Store, TrainingJobStatus};
use tokio::sync::mpsc;

use super::outputs::TrainOutput;
use super::train::{checksum, drift_baseline, statuses};
use super::{Log, StageFailure, line};
use crate::managed::{ManagedJob, ManagedTraining, Progress};
use crate::run::RunContext;
use crate::{Engine, Error};

/// Refuses, before a run is recorded, a SageMaker stage this engine cannot run: a build without
/// the backend, an instance type SageMaker does not have, or artifacts kept on this machine.
pub(crate) fn check(engine: &Engine, resolved: &Resolved) -> Result<(), Error> {
    for stage in &resolved.stages {
        let StageKind::Train { backend: TrainingBackend::SageMaker(_), instance_type, .. } = &stage.kind else {
            continue;
        };
        let backend = backend(engine).map_err(Error::Invalid)?;
        let instance_type = instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE);
        backend
            .check_instance_type(instance_type)
            .map_err(|why| Error::Invalid(format!("stage `{}`: {why}", stage.name)))?;
        output_path(engine).map_err(|why| Error::Invalid(format!("stage `{}`: {why}", stage.name)))?;
    }
    Ok(())
}

/// Why a build without SageMaker refuses a `backend = "sagemaker"` stage.
pub(crate) const WITHOUT_AWS: &str =
    "backend = \"sagemaker\" needs a sagebrush built with SageMaker: `cargo build --release --features aws`";

fn backend(engine: &Engine) -> Result<Arc<dyn ManagedTraining>, String> {
    engine.inner.backends.sagemaker_training.clone().ok_or_else(|| WITHOUT_AWS.to_owned())
}

/// `s3://bucket/prefix`, where SageMaker writes the model.
pub(crate) fn output_path(engine: &Engine) -> Result<String, String> {
    match engine.home().artifact_location() {
        location @ Location::S3 { .. } => Ok(location.to_string()),
        Location::Local(_) => Err("SageMaker keeps models on S3, but artifacts are kept on this machine; \
             start sagebrush with --artifacts s3://bucket/prefix"
            .to_owned()),
    }
}

/// Runs the stage's job on SageMaker, `image` being what SageMaker pulls.
pub(crate) async fn run(
    context: &mut RunContext,
    stage: &Stage,
    settings: &SageMakerTraining,
    image: String,
    log: &mut Log,
) -> Result<TrainOutput, StageFailure> {
    let StageKind::Train { channels, hyperparameters, max_runtime, metrics, instance_type, .. } = &stage.kind else {
        return Err(StageFailure::failed("not a train stage"));
    };
    let backend = backend(&context.engine).map_err(StageFailure::failed)?;
    let output_path = output_path(&context.engine).map_err(StageFailure::failed)?;
    let job_name = format!("{}-{}", context.run.project, context.run.number);
    if !context.secrets.is_empty() {
        // SageMaker shows a job's `Environment` to anyone who may describe it.
        line(
            log,
            "secret parameters are not given to SageMaker jobs; read them from AWS Secrets Manager in the container",
        )
        .await;
    }
    let (s3_channels, data) = s3_channels(context, &job_name, channels, log).await?;
    let job = ManagedJob {
        name: job_name.clone(),
        image: image.clone(),
        settings: settings.clone(),
        instance_type: instance_type.clone().unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned()),
        max_runtime: *max_runtime,
        channels: s3_channels,
        hyperparameters: hyperparameters.clone(),
        output_path,
        metric_definitions: metrics.clone(),
    };
    let store = context.engine.store().clone();
    let hyperparameters_json = serde_json::to_value(hyperparameters).unwrap_or_default();
    store
        .create_training_job(&job_name, context.run.id, &image, &hyperparameters_json.to_string())
        .await
        .map_err(StageFailure::store)?;
    let output = serde_json::json!({
        "job": job_name,
        "algorithm": image,
        "backend": "sagemaker",
        "hyperparameters": hyperparameters_json,
        "data": data,
    });
    let fail = |reason: String| StageFailure::Failed { reason, output: output.clone() };

    line(
        log,
        &format!(
            "training job {job_name} on SageMaker ({}, {} instance(s))",
            job.instance_type, settings.instance_count
        ),
    )
    .await;
    let (progress, mut reported) = mpsc::unbounded_channel::<Progress>();
    let follow = async {
        // The job's statuses are recorded as they come, so the API shows where it is.
        while let Some(p) = reported.recv().await {
            let reason = p.message.as_deref().filter(|_| p.status == TrainingJobStatus::Failed);
            if let Err(e) = store.set_training_job_status(&job_name, p.status, p.secondary, reason).await {
                tracing::warn!(job = %job_name, "recording a SageMaker status: {e}");
            }
        }
    };
    let (ran, ()) = tokio::join!(backend.run(&job, progress, log, context.cancel.clone()), follow);
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(e) => {
            let reason = e.to_string();
            set_status(&store, &job_name, End::Failed, Some(&reason)).await?;
            return Err(fail(reason));
        }
    };
    let metrics_json = serde_json::to_value(&outcome.metrics).unwrap_or_default();
    let (status, secondary) = statuses(outcome.end);
    if outcome.end != End::Completed {
        let reason = outcome.failure_reason.clone().unwrap_or_else(|| status.to_string());
        set_status(&store, &job_name, outcome.end, Some(&reason)).await?;
        store.set_training_job_output(&job_name, &metrics_json, None, None).await.map_err(StageFailure::store)?;
        line(log, &format!("training job {job_name}: {status} ({secondary})")).await;
        if outcome.end == End::Stopped && *context.cancel.borrow() {
            return Err(StageFailure::Cancelled);
        }
        let ended = status.to_string().to_lowercase();
        return Err(fail(format!("training job {job_name} {ended}: {reason}")));
    }
    let Some(model_uri) = outcome.model_uri.clone() else {
        let reason = "SageMaker reported the job completed but gave no model artifact".to_owned();
        set_status(&store, &job_name, End::Failed, Some(&reason)).await?;
        return Err(fail(reason));
    };
    // SageMaker's object carries no checksum of ours: it is taken now, and every later read is checked against it.
    let model_sha256 = match context.engine.inner.artifacts.get(&model_uri, None).await {
        Ok(bytes) => store::sha256_bytes(&bytes),
        Err(e) => {
            let reason = format!("reading the model SageMaker wrote: {e}");
            set_status(&store, &job_name, End::Failed, Some(&reason)).await?;
            return Err(fail(reason));
        }
    };
    store
        .set_training_job_output(&job_name, &metrics_json, Some(&model_uri), Some(&model_sha256))
        .await
        .map_err(StageFailure::store)?;
    set_status(&store, &job_name, End::Completed, None).await?;
    line(log, &format!("training job {job_name}: Completed; model {model_uri} sha256 {model_sha256}")).await;
    let training = match channels.get("training") {
        Some(Channel::Path(path)) => Some(context.source_dir.join(path)),
        _ => None,
    };
    let baseline = drift_baseline(training, log).await;
    Ok(TrainOutput {
        job: job_name,
        algorithm: image,
        hyperparameters: hyperparameters.clone(),
        data,
        image: None,
        metrics: outcome.metrics,
        status,
        model_uri,
        model_sha256,
        baseline,
    })
}

async fn set_status(store: &Store, job: &str, end: End, reason: Option<&str>) -> Result<(), StageFailure> {
    let (status, secondary): (TrainingJobStatus, SecondaryStatus) = statuses(end);
    store.set_training_job_status(job, status, secondary, reason).await.map_err(StageFailure::store)
}

/// Each channel as the `s3://` URI SageMaker reads, and its lineage: a project file is uploaded
/// under `<job>/input/data/<channel>/` and keeps its sha256; an S3 channel is taken as it is,
/// its lineage the digest of its listing (keys, sizes, ETags).
async fn s3_channels(
    context: &RunContext,
    job_name: &str,
    channels: &BTreeMap<String, Channel>,
    log: &mut Log,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, serde_json::Value>), StageFailure> {
    let mut uris = BTreeMap::new();
    let mut data = BTreeMap::new();
    for (name, channel) in channels {
        match channel {
            Channel::S3(uri) => {
                let digest = store::s3_digest(uri)
                    .await
                    .map_err(|e| StageFailure::failed(format!("{job_name}: channel `{name}`: {e}")))?;
                uris.insert(name.clone(), uri.clone());
                data.insert(name.clone(), serde_json::json!({ "s3": uri, "digest": digest }));
            }
            Channel::Path(path) => {
                let path = context.source_dir.join(path);
                data.insert(name.clone(), checksum(name, &path)?);
                let prefix = format!("{job_name}/input/data/{name}");
                let uri = upload(context, &prefix, &path).await?;
                line(log, &format!("channel `{name}`: uploaded to {uri}")).await;
                uris.insert(name.clone(), uri);
            }
        }
    }
    Ok((uris, data))
}

/// Uploads a file, or a folder's files, under `prefix`; the `s3://` prefix SageMaker reads them from.
async fn upload(context: &RunContext, prefix: &str, path: &Path) -> Result<String, StageFailure> {
    let files: Vec<std::path::PathBuf> = if path.is_file() {
        vec![path.to_owned()]
    } else {
        let entries =
            std::fs::read_dir(path).map_err(|e| StageFailure::failed(format!("channel {}: {e}", path.display())))?;
        entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect()
    };
    let mut uri = None;
    for file in files {
        let Some(file_name) = file.file_name().and_then(|n| n.to_str()) else { continue };
        let stored = context
            .engine
            .inner
            .artifacts
            .put_file(&format!("{prefix}/{file_name}"), &file)
            .await
            .map_err(StageFailure::store)?;
        uri = stored.uri.strip_suffix(file_name).map(str::to_owned);
    }
    uri.ok_or_else(|| StageFailure::failed(format!("channel {} has no files to upload", path.display())))
}
