//! The train stage: a training job `<pipeline>-<run>` under the SageMaker contract, its model stored as `<job>/output/model.tar.gz`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pipeline::{Algorithm as AlgorithmSpec, Channel, Stage, StageKind, TrainingBackend};
use regex::Regex;
use runtime::training::{self, End, TrainingJob};
use runtime::{Algorithm, instance};

use super::outputs::{StageOutput, TrainOutput};
use super::{Log, StageFailure, line};
use store::{SecondaryStatus, TrainingJobStatus};

use crate::run::RunContext;

pub(crate) async fn run(context: &mut RunContext, stage: &Stage, log: &mut Log) -> Result<TrainOutput, StageFailure> {
    let StageKind::Train { channels, hyperparameters, max_runtime, metrics, instance_type, backend } = &stage.kind
    else {
        return Err(StageFailure::failed("not a train stage"));
    };
    let job_name = format!("{}-{}", context.run.project, context.run.number);
    // The pipeline file is validated to have an [algorithm] when it has a train stage.
    let mut built_here = None;
    let algorithm = match &context.pipeline.algorithm {
        Some(AlgorithmSpec::Builtin(builtin)) => Algorithm::Builtin(builtin.as_str().to_owned()),
        Some(AlgorithmSpec::BuiltinImage(_)) => {
            let engine = &context.engine;
            let scratch = engine.home().run_dir(&context.pipeline.name, context.run.number);
            let image = crate::builtin_image::ensure(
                engine.inner.backends.images.as_ref(),
                &engine.inner.sagebrush_exe,
                &scratch,
            )
            .await
            .map_err(|e| StageFailure::failed(e.to_string()))?;
            line(log, &format!("the built-in algorithm runs in {image}")).await;
            built_here = Some(super::build::describe_image(context, &image, log).await?);
            Algorithm::Image(image)
        }
        Some(AlgorithmSpec::Process { dir, workdir }) => Algorithm::Process(runtime::sandbox::Program {
            dir: context.source_dir.join(dir),
            workdir: workdir.clone(),
        }),
        // The image this run built and pushed, pinned by digest; else the named image as it is.
        Some(AlgorithmSpec::Image { image }) => {
            match context.latest(StageOutput::build).and_then(|b| b.reference.as_deref()) {
                Some(built) => Algorithm::Image(built.to_owned()),
                None => Algorithm::Image(image.clone()),
            }
        }
        None => return Err(StageFailure::failed("the pipeline has no [algorithm] to train")),
    };
    if let TrainingBackend::SageMaker(settings) = backend {
        let Algorithm::Image(image) = algorithm else {
            return Err(StageFailure::failed("SageMaker trains container images; [algorithm] names none"));
        };
        return super::train_managed::run(context, stage, settings, image, log).await;
    }
    let channels = channel_paths(context, &job_name, channels, log).await?;
    let mut data_checksums = BTreeMap::new();
    for (name, path) in &channels {
        data_checksums.insert(name.clone(), checksum(name, path)?);
    }
    let metric_definitions = metrics
        .iter()
        .map(|m| Regex::new(&m.regex).map(|r| (m.name.clone(), r)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StageFailure::failed(format!("metric regex: {e}")))?;
    let limits = instance::limits(instance_type.as_deref()).map_err(|e| StageFailure::failed(e.to_string()))?;
    let job = TrainingJob {
        name: job_name.clone(),
        algorithm: algorithm.clone(),
        channels,
        hyperparameters: with_builtin_name(hyperparameters, context.pipeline.algorithm.as_ref()),
        max_runtime: *max_runtime,
        metric_definitions,
        sagebrush_exe: context.engine.inner.sagebrush_exe.clone(),
        limits,
        labels: context.engine.container_labels(),
        environment: context.secrets.env().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
    };
    let store = context.engine.store().clone();
    let hyperparameters_json = serde_json::to_value(hyperparameters).unwrap_or_default();
    store
        .create_training_job(&job_name, context.run.id, &algorithm.reference(), &hyperparameters_json.to_string())
        .await
        .map_err(StageFailure::store)?;
    let mut output = serde_json::json!({
        "job": job_name,
        "algorithm": algorithm.reference(),
        "hyperparameters": hyperparameters_json,
        "data": data_checksums,
    });
    if let Some(image) = &built_here {
        output["image"] = serde_json::to_value(image).unwrap_or_default();
    }
    let fail = |reason: String, output: &serde_json::Value| StageFailure::Failed { reason, output: output.clone() };

    line(log, &format!("training job {job_name}: Downloading")).await;
    store
        .set_training_job_status(&job_name, TrainingJobStatus::InProgress, SecondaryStatus::Downloading, None)
        .await
        .map_err(StageFailure::store)?;
    let work_dir = context.engine.home().jobs_dir(&context.pipeline.name, context.run.number).join(&job_name);
    let _ = std::fs::remove_dir_all(&work_dir);
    let opt_ml = match training::prepare(&job, &work_dir) {
        Ok(opt_ml) => opt_ml,
        Err(e) => {
            let reason = format!("ClientError: {e}");
            store
                .set_training_job_status(&job_name, TrainingJobStatus::Failed, SecondaryStatus::Failed, Some(&reason))
                .await
                .map_err(StageFailure::store)?;
            return Err(fail(reason, &output));
        }
    };

    line(log, &format!("training job {job_name}: Training")).await;
    store
        .set_training_job_status(&job_name, TrainingJobStatus::InProgress, SecondaryStatus::Training, None)
        .await
        .map_err(StageFailure::store)?;
    let training = context.engine.inner.backends.training(&job.algorithm);
    let ran = if context.secrets.is_empty() {
        training.run(&job, &opt_ml, log, context.cancel.clone()).await
    } else {
        // Through a pipe that masks the secrets on the way to the log.
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let run = async {
            let mut writer = writer;
            training.run(&job, &opt_ml, &mut writer, context.cancel.clone()).await
        };
        let (ran, _) = tokio::join!(run, context.secrets.copy_masked(reader, &mut *log));
        ran
    };
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(e) => {
            let reason = e.to_string();
            store
                .set_training_job_status(&job_name, TrainingJobStatus::Failed, SecondaryStatus::Failed, Some(&reason))
                .await
                .map_err(StageFailure::store)?;
            return Err(fail(reason, &output));
        }
    };
    let metrics_json = serde_json::to_value(&outcome.metrics).unwrap_or_default();
    output["metrics"] = metrics_json.clone();
    let (status, secondary_status) = statuses(outcome.end);
    output["status"] = status.to_string().into();
    if outcome.end != End::Completed {
        let reason = outcome.failure_reason.clone().unwrap_or_else(|| status.to_string());
        store
            .set_training_job_status(&job_name, status, secondary_status, Some(&reason))
            .await
            .map_err(StageFailure::store)?;
        store.set_training_job_output(&job_name, &metrics_json, None, None).await.map_err(StageFailure::store)?;
        line(log, &format!("training job {job_name}: {status} ({secondary_status})")).await;
        if outcome.end == End::Stopped && *context.cancel.borrow() {
            return Err(StageFailure::Cancelled);
        }
        let ended = status.to_string().to_lowercase();
        return Err(fail(format!("training job {job_name} {ended}: {reason}"), &output));
    }

    line(log, &format!("training job {job_name}: Uploading")).await;
    store
        .set_training_job_status(&job_name, TrainingJobStatus::InProgress, SecondaryStatus::Uploading, None)
        .await
        .map_err(StageFailure::store)?;
    let stored = async {
        let archive = training::package(&opt_ml, &work_dir)?;
        let key = format!("{job_name}/output/model.tar.gz");
        Ok::<_, crate::Error>(context.engine.inner.artifacts.put_file(&key, &archive).await?)
    }
    .await;
    let stored = match stored {
        Ok(stored) => stored,
        Err(e) => {
            let reason = format!("storing the model: {e}");
            store
                .set_training_job_status(&job_name, TrainingJobStatus::Failed, SecondaryStatus::Failed, Some(&reason))
                .await
                .map_err(StageFailure::store)?;
            return Err(fail(reason, &output));
        }
    };
    store
        .set_training_job_output(&job_name, &metrics_json, Some(&stored.uri), Some(&stored.sha256))
        .await
        .map_err(StageFailure::store)?;
    store
        .set_training_job_status(&job_name, TrainingJobStatus::Completed, SecondaryStatus::Completed, None)
        .await
        .map_err(StageFailure::store)?;
    line(log, &format!("training job {job_name}: Completed; model {} sha256 {}", stored.uri, stored.sha256)).await;
    let baseline = drift_baseline(job.channels.get("training").cloned(), log).await;
    Ok(TrainOutput {
        job: job_name,
        algorithm: algorithm.reference(),
        hyperparameters: hyperparameters.clone(),
        data: data_checksums,
        image: built_here,
        metrics: outcome.metrics,
        status,
        model_uri: stored.uri,
        model_sha256: stored.sha256,
        baseline,
    })
}

/// Each channel as a local file or folder: a path in the source, or what an `s3://` URI names,
/// downloaded into the run's folder first, as SageMaker fills `/opt/ml/input/data/<channel>`.
async fn channel_paths(
    context: &RunContext,
    job_name: &str,
    channels: &BTreeMap<String, Channel>,
    log: &mut Log,
) -> Result<BTreeMap<String, PathBuf>, StageFailure> {
    let mut paths = BTreeMap::new();
    for (name, channel) in channels {
        let path = match channel {
            Channel::Path(path) => context.source_dir.join(path),
            Channel::S3(uri) => {
                let into = context
                    .engine
                    .home()
                    .run_dir(&context.pipeline.name, context.run.number)
                    .join("channels")
                    .join(name);
                // A retry downloads afresh rather than mixing two versions of the data.
                let _ = std::fs::remove_dir_all(&into);
                let files = store::download(uri, &into)
                    .await
                    .map_err(|e| StageFailure::failed(format!("{job_name}: channel `{name}`: {e}")))?;
                line(log, &format!("channel `{name}`: downloaded {files} file(s) from {uri}")).await;
                into
            }
        };
        paths.insert(name.clone(), path);
    }
    Ok(paths)
}

/// What drift checks compare an endpoint's requests with: the `training` channel's features.
/// Training data that is not a CSV of numbers has none, which only drift checks miss.
pub(super) async fn drift_baseline(channel: Option<PathBuf>, log: &mut Log) -> Option<Box<crate::Baseline>> {
    let channel = channel?;
    let taken = tokio::task::spawn_blocking(move || crate::Baseline::of_channel(&channel)).await;
    match taken {
        Ok(Ok(baseline)) => {
            let message =
                format!("drift baseline: {} features of {} training rows", baseline.features.len(), baseline.rows);
            line(log, &message).await;
            Some(Box::new(baseline))
        }
        Ok(Err(why)) => {
            line(log, &format!("no drift baseline: {why}")).await;
            None
        }
        Err(_) => None,
    }
}

/// sha256 of a channel's file, or of each file in its folder, for lineage.
pub(super) fn checksum(channel: &str, path: &std::path::Path) -> Result<serde_json::Value, StageFailure> {
    let missing = || {
        StageFailure::failed(format!(
            "channel `{channel}`: {} does not exist; check the path in sagebrush.toml (paths are relative to the project)",
            path.display()
        ))
    };
    if path.is_file() {
        return store::sha256_file(path).map(Into::into).map_err(StageFailure::store);
    }
    let entries = std::fs::read_dir(path).map_err(|_| missing())?;
    let mut sums = serde_json::Map::new();
    for entry in entries.flatten() {
        let file = entry.path();
        if file.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            sums.insert(name, store::sha256_file(&file).map_err(StageFailure::store)?.into());
        }
    }
    Ok(sums.into())
}

/// The image's `train` learns which built-in algorithm to fit from the `algorithm` hyperparameter.
fn with_builtin_name(
    hyperparameters: &BTreeMap<String, String>,
    spec: Option<&AlgorithmSpec>,
) -> BTreeMap<String, String> {
    let mut hyperparameters = hyperparameters.clone();
    if let Some(AlgorithmSpec::BuiltinImage(builtin)) = spec {
        hyperparameters.entry("algorithm".to_owned()).or_insert_with(|| builtin.as_str().to_owned());
    }
    hyperparameters
}

/// SageMaker's status pair for how a job ended.
pub(super) fn statuses(end: End) -> (TrainingJobStatus, SecondaryStatus) {
    match end {
        End::Completed => (TrainingJobStatus::Completed, SecondaryStatus::Completed),
        End::Failed => (TrainingJobStatus::Failed, SecondaryStatus::Failed),
        End::Stopped => (TrainingJobStatus::Stopped, SecondaryStatus::Stopped),
        End::MaxRuntimeExceeded => (TrainingJobStatus::Stopped, SecondaryStatus::MaxRuntimeExceeded),
    }
}
