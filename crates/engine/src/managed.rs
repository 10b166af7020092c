//! Training on a managed service (Amazon SageMaker, chosen per stage with `backend = "sagemaker"`):
//! the job's image comes from a registry the service pulls from, its channels and its model live
//! on S3, and the service runs it. The engine describes the job and follows it; the service's
//! client lives in another crate, so the engine knows no AWS.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use pipeline::{MetricDefinition, SageMakerTraining};
use runtime::training::End;
use store::{SecondaryStatus, TrainingJobStatus};
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, watch};

/// What a managed service's client fails with (an SDK error, refused credentials); the engine
/// only shows it, as the stage's failure reason.
pub type ManagedError = Box<dyn std::error::Error + Send + Sync>;

/// A training job for a managed service, SageMaker's `CreateTrainingJob` in the engine's terms.
#[derive(Clone, Debug)]
pub struct ManagedJob {
    /// `<pipeline>-<run>`, unique in the account as SageMaker requires.
    pub name: String,
    /// The image URI the service pulls.
    pub image: String,
    /// Role, instance count, volume and region, as the pipeline file gives them.
    pub settings: SageMakerTraining,
    pub instance_type: String,
    pub max_runtime: Duration,
    /// Channel name to an `s3://` URI (a prefix or one object).
    pub channels: BTreeMap<String, String>,
    /// Every value a string, as SageMaker passes them.
    pub hyperparameters: BTreeMap<String, String>,
    /// `s3://bucket/prefix`: the model goes to `<prefix>/<job>/output/model.tar.gz`.
    pub output_path: String,
    /// Read from the job's log by the service (`MetricDefinitions`).
    pub metric_definitions: Vec<MetricDefinition>,
}

/// How a managed job ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedOutcome {
    pub end: End,
    /// The service's `FailureReason` when it failed or stopped.
    pub failure_reason: Option<String>,
    /// The last value of each metric (`FinalMetricDataList`).
    pub metrics: BTreeMap<String, f64>,
    /// Where the model was written (`S3ModelArtifacts`), when it completed.
    pub model_uri: Option<String>,
}

/// A status the service reported, as it changes (SageMaker's `SecondaryStatusTransitions`).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub status: TrainingJobStatus,
    pub secondary: SecondaryStatus,
    /// The service's words for it (`StatusMessage`).
    pub message: Option<String>,
}

/// Whether the service takes this process's credentials, for `sagebrush doctor`.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// Accepted: who they are (account and ARN) and the region.
    Accepted(String),
    /// None were found, or the service was not reached.
    Missing(String),
    /// The service refused them.
    Refused(String),
}

/// Runs training jobs on a managed service.
pub trait ManagedTraining: Send + Sync {
    /// Refuses, before anything is recorded, an instance type the service does not have.
    fn check_instance_type(&self, instance_type: &str) -> Result<(), String>;

    /// Asks the service who the credentials are.
    fn identity(&self) -> BoxFuture<'_, Identity>;

    /// Creates the job and follows it until it ends, each status change sent to `progress` and
    /// written to `log`; when `cancel` turns true the job is stopped, and followed until it is.
    fn run<'a>(
        &'a self,
        job: &'a ManagedJob,
        progress: mpsc::UnboundedSender<Progress>,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<ManagedOutcome, ManagedError>>;
}

#[cfg(test)]
pub(crate) mod fake {
    //! A managed service that knows two instance types and runs nothing.

    use super::*;

    pub struct FakeManaged;

    impl ManagedTraining for FakeManaged {
        fn check_instance_type(&self, instance_type: &str) -> Result<(), String> {
            match instance_type {
                "ml.m5.large" | "ml.m5.xlarge" => Ok(()),
                other => Err(format!("SageMaker has no training instance type `{other}`")),
            }
        }

        fn identity(&self) -> BoxFuture<'_, Identity> {
            Box::pin(async { Identity::Missing("the fake has no credentials".into()) })
        }

        fn run<'a>(
            &'a self,
            _: &'a ManagedJob,
            _: mpsc::UnboundedSender<Progress>,
            _: &'a mut (dyn AsyncWrite + Unpin + Send),
            _: watch::Receiver<bool>,
        ) -> BoxFuture<'a, Result<ManagedOutcome, ManagedError>> {
            Box::pin(async { Err("the fake runs no jobs".into()) })
        }
    }
}
