//! SageMaker training jobs as sagebrush has them: a job is a project of one train stage, written
//! from the request under `<home>/sagemaker/training-jobs/<name>/`, and that project's one run.
//! The control plane's training-job operations call these; `sagebrush runs`, the API and the
//! dashboard show the run like any other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use names::Name;
use serde::Serialize;
use store::{Location, RunRecord, TrainingJobRecord};

use super::hosting::invalid;
use super::{Result, Service};
use crate::ServiceError;
use crate::auth::Caller;

/// The request a job was made from, kept in its folder for DescribeTrainingJob to echo.
const REQUEST_FILE: &str = "request.json";

/// What a training job runs, on what data, read from a SageMaker request.
#[derive(Clone, Debug)]
pub struct TrainingJobSpec {
    pub name: Name,
    /// `TrainingImage`: an image reference, an ECR image URI (served by the local registry), or
    /// `builtin:<algorithm>` for one of sagebrush's own.
    pub image: String,
    /// Channel name to its `s3://` URI.
    pub channels: BTreeMap<String, String>,
    pub hyperparameters: BTreeMap<String, String>,
    /// Each metric's name and the regex that finds its value in the job's output.
    pub metrics: Vec<(String, String)>,
    pub instance_type: Option<String>,
    pub instance_count: u32,
    pub max_runtime_seconds: u64,
    /// The request as sent.
    pub request: serde_json::Value,
}

/// A training job: the request it was made from, its run, and the job once its stage started.
#[derive(Clone, Debug)]
pub struct TrainingJobView {
    pub name: Name,
    pub request: serde_json::Value,
    pub run: RunRecord,
    pub job: Option<TrainingJobRecord>,
}

impl Service {
    /// Writes the job's project, adds it, and starts (or queues) its run for `caller`.
    pub async fn create_training_job(&self, spec: &TrainingJobSpec, caller: &Caller) -> Result<TrainingJobView> {
        if spec.instance_count != 1 {
            return Err(invalid(format!(
                "InstanceCount {} is more than sagebrush trains on: a job trains on one instance here",
                spec.instance_count
            )));
        }
        runtime::instance::limits(spec.instance_type.as_deref()).map_err(engine::Error::from)?;
        let name = &spec.name;
        let dir = self.engine.home().sagemaker_jobs().join(name);
        let project = match self.engine.store().project(name).await {
            Ok(_) => true,
            Err(store::Error::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if dir.exists() || project {
            return Err(ServiceError::new(
                StatusCode::CONFLICT,
                "resource_in_use",
                format!("a training job or project named {name} exists already"),
            )
            .hint("training job names are unique: pick another name"));
        }
        let mut channels = BTreeMap::new();
        for (channel, uri) in &spec.channels {
            channels.insert(channel.clone(), self.channel_source(channel, uri)?);
        }
        let algorithm = self.algorithm(&spec.image).await?;
        let file = pipeline_file(spec, algorithm, channels)?;
        write_project(&dir, &file, &spec.request)?;
        let started = async {
            self.engine.add_project(&dir).await?;
            self.submit(name, &[], caller).await
        };
        if let Err(e) = started.await {
            let _ = self.engine.store().remove_project(name).await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.training_job(name).await
    }

    /// A job CreateTrainingJob made.
    pub async fn training_job(&self, name: &Name) -> Result<TrainingJobView> {
        let file = self.engine.home().sagemaker_jobs().join(name).join(REQUEST_FILE);
        let request = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ServiceError::new(StatusCode::NOT_FOUND, "not_found", format!("no training job {name}")))?;
        let run = self.engine.store().run(name, Some(1)).await?;
        let job = self.engine.store().training_jobs_of(run.id).await?.into_iter().next();
        Ok(TrainingJobView { name: name.clone(), request, run, job })
    }

    /// Every job CreateTrainingJob made, in no particular order.
    pub async fn training_job_views(&self) -> Result<Vec<TrainingJobView>> {
        let Ok(entries) = std::fs::read_dir(self.engine.home().sagemaker_jobs()) else { return Ok(Vec::new()) };
        let mut views = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().and_then(|n| Name::parse(n).ok()) else { continue };
            match self.training_job(&name).await {
                Ok(view) => views.push(view),
                // A folder being written, or one whose run was removed, is no job to list.
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        Ok(views)
    }

    /// Stops a job's run; a job that has ended stays as it ended.
    pub async fn stop_training_job(&self, name: &Name) -> Result<()> {
        let view = self.training_job(name).await?;
        self.engine.cancel(view.run.id).await?;
        Ok(())
    }

    /// An image as this machine runs it: an ECR URI is the same repository in the local
    /// registry, which stands in for ECR; anything else is a reference the Docker Engine knows.
    pub(crate) async fn local_image(&self, image: &str) -> Result<String> {
        match ecr_repository(image) {
            Some(repository) => Ok(format!("{}/{repository}", self.engine.local_registry().await?)),
            None => Ok(image.to_owned()),
        }
    }

    /// The pipeline's `[algorithm]` for a `TrainingImage`.
    async fn algorithm(&self, image: &str) -> Result<toml::Table> {
        let mut table = toml::Table::new();
        match image.strip_prefix("builtin:") {
            Some(builtin) => table.insert("builtin".to_owned(), builtin.into()),
            None => table.insert("image".to_owned(), self.local_image(image).await?.into()),
        };
        Ok(table)
    }

    /// Where a channel's `s3://` URI is read from: S3 itself when the artifacts are there, else
    /// the home's S3 folder, `<home>/s3/<bucket>/<key>`.
    fn channel_source(&self, channel: &str, uri: &str) -> Result<String> {
        let (bucket, key) = s3_parts(uri).ok_or_else(|| {
            invalid(format!(
                "channel {channel}: S3Uri {:?} is not s3://<bucket>/<key> with a bucket of 3 to 63 \
                 lowercase letters, digits, `.` and `-`, and no `.` or `..` in the key",
                names::excerpt(uri, 120)
            ))
        })?;
        let home = self.engine.home();
        if let Location::S3 { .. } = home.artifact_location() {
            return Ok(uri.to_owned());
        }
        let path = home.s3_folder().join(bucket).join(key);
        if !path.exists() {
            return Err(invalid(format!(
                "channel {channel}: nothing is at {uri}. This server keeps its artifacts on this machine, \
                 so s3://<bucket>/<key> is the file or folder <home>/s3/<bucket>/<key>: put the data at {}",
                path.display()
            )));
        }
        Ok(path.display().to_string())
    }
}

/// `<repository>[:tag|@digest]` of an ECR image URI, `<account>.dkr.ecr.<region>.amazonaws.com/...`.
pub(crate) fn ecr_repository(image: &str) -> Option<&str> {
    let (host, repository) = image.split_once('/')?;
    let labels: Vec<&str> = host.split('.').collect();
    let ecr = labels.len() >= 6
        && labels[0].len() == 12
        && labels[0].bytes().all(|b| b.is_ascii_digit())
        && labels[1..3] == ["dkr", "ecr"]
        && labels[4] == "amazonaws";
    (ecr && !repository.is_empty()).then_some(repository)
}

/// The bucket and key of an `s3://` URI, when both are safe to use as a path under a folder (a
/// key may be empty or end in `/`: a channel's URI is a prefix).
pub(crate) fn s3_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (super::buckets::bucket_name_ok(bucket) && (key.is_empty() || super::buckets::key_ok(key))).then_some((bucket, key))
}

#[derive(Serialize)]
struct PipelineFile<'a> {
    pipeline: Header<'a>,
    algorithm: toml::Table,
    stage: [TrainStage<'a>; 1],
}

#[derive(Serialize)]
struct Header<'a> {
    name: &'a str,
    description: String,
    // The channels are in the home's S3 folder, outside the project.
    allow_absolute_paths: bool,
}

#[derive(Serialize)]
struct TrainStage<'a> {
    name: &'static str,
    kind: &'static str,
    channels: BTreeMap<String, String>,
    hyperparameters: &'a BTreeMap<String, String>,
    max_runtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_type: Option<&'a str>,
    metrics: Vec<Metric<'a>>,
}

#[derive(Serialize)]
struct Metric<'a> {
    name: &'a str,
    regex: &'a str,
}

/// The job's `sagebrush.toml`: one train stage.
fn pipeline_file(spec: &TrainingJobSpec, algorithm: toml::Table, channels: BTreeMap<String, String>) -> Result<String> {
    let file = PipelineFile {
        pipeline: Header {
            name: spec.name.as_str(),
            description: format!("SageMaker training job {}, made by CreateTrainingJob", spec.name),
            allow_absolute_paths: true,
        },
        algorithm,
        stage: [TrainStage {
            name: "train",
            kind: "train",
            channels,
            hyperparameters: &spec.hyperparameters,
            max_runtime: format!("{}s", spec.max_runtime_seconds),
            instance_type: spec.instance_type.as_deref(),
            metrics: spec.metrics.iter().map(|(name, regex)| Metric { name, regex }).collect(),
        }],
    };
    toml::to_string(&file).map_err(|e| invalid(format!("the request cannot be a pipeline file: {e}")))
}

/// Writes the project into place whole: a folder that exists holds both files.
fn write_project(dir: &Path, pipeline: &str, request: &serde_json::Value) -> Result<()> {
    let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let staging: PathBuf = parent.join(format!(".creating-{}", runtime::unique_suffix()));
    let written = (|| {
        std::fs::create_dir_all(&staging)?;
        std::fs::write(staging.join(engine::PIPELINE_FILE), pipeline)?;
        std::fs::write(staging.join(REQUEST_FILE), request.to_string())?;
        std::fs::rename(&staging, dir)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        ServiceError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "io_error",
            format!("writing the training job's project at {}: {e}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_uris_name_their_repository_and_other_references_do_not() {
        let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/scikit-byo:latest";
        assert_eq!(ecr_repository(ecr), Some("scikit-byo:latest"));
        assert_eq!(ecr_repository("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/a@sha256:00"), Some("a@sha256:00"));
        assert_eq!(ecr_repository("127.0.0.1:5000/scikit-byo:7"), None);
        assert_eq!(ecr_repository("12345.dkr.ecr.eu-west-1.amazonaws.com/a"), None);
        assert_eq!(ecr_repository("scikit-byo"), None);
    }

    #[test]
    fn s3_uris_become_paths_only_when_safe() {
        assert_eq!(s3_parts("s3://my-bucket/iris/train.csv"), Some(("my-bucket", "iris/train.csv")));
        assert_eq!(s3_parts("s3://my-bucket"), Some(("my-bucket", "")));
        assert_eq!(s3_parts("s3://my-bucket/a/../../etc/passwd"), None);
        assert_eq!(s3_parts("s3://My_Bucket/a"), None);
        assert_eq!(s3_parts("s3://../a"), None);
        assert_eq!(s3_parts("https://my-bucket/a"), None);
    }
}
