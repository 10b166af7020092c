//! Training and hosting on a managed service (Amazon SageMaker, chosen per stage with
//! `backend = "sagemaker"`): the image comes from a registry the service pulls from, channels and
//! models live on S3, and the service runs the job or serves the endpoint. The engine describes
//! what it wants and follows it; the service's client lives in another crate, so the engine knows
//! no AWS.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use pipeline::{Ecr, MetricDefinition, SageMakerHosting, SageMakerTraining, Traffic};
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

/// An endpoint for a managed service: SageMaker's `CreateModel`, `CreateEndpointConfig` and
/// `CreateEndpoint` (or `UpdateEndpoint`) in the engine's terms.
#[derive(Clone, Debug)]
pub struct ManagedEndpoint {
    pub endpoint: String,
    /// `<group>-v<version>`: one service model per model version, which endpoints share.
    pub model: String,
    /// The image URI the service pulls.
    pub image: String,
    /// The version's `model.tar.gz`, an `s3://` URI.
    pub model_uri: String,
    /// Role, region and rollback alarms, as the pipeline file gives them.
    pub settings: SageMakerHosting,
    pub instance_type: String,
    pub instances: u32,
    pub variant: String,
    /// An A/B deploy: this variant gets this weight and the endpoint's other variants stay.
    pub weight: Option<f64>,
    /// How traffic moves to the new model when the endpoint already serves one, each step watched for `bake`.
    pub traffic: Traffic,
    pub bake: Duration,
    /// How long the endpoint may take to be in service.
    pub deadline: Duration,
}

/// How a managed deploy ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Hosted {
    /// The endpoint serves the new configuration.
    InService { arn: String, config: String },
    /// The service rolled the update back (a rollback alarm fired): the endpoint serves `config`, the one it had.
    RolledBack { arn: String, config: String, reason: String },
}

/// Serves endpoints on a managed service.
pub trait ManagedHosting: Send + Sync {
    /// Refuses, before anything is recorded, an instance type the service cannot host on.
    fn check_instance_type(&self, instance_type: &str) -> Result<(), String>;

    /// Makes the endpoint serve the model (creating what it needs) and waits until it does, or
    /// until the deadline; what happens is written to `log`.
    fn deploy<'a>(
        &'a self,
        endpoint: &'a ManagedEndpoint,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<Hosted, ManagedError>>;

    /// Sends one request to the endpoint and returns its answer.
    fn invoke<'a>(
        &'a self,
        endpoint: &'a str,
        region: Option<&'a str>,
        content_type: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, ManagedError>>;

    /// The configuration the endpoint serves, or `None` when there is no such endpoint.
    fn serves<'a>(
        &'a self,
        endpoint: &'a str,
        region: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, ManagedError>>;

    /// Deletes the endpoint, then the configurations and models no endpoint uses any more.
    fn delete<'a>(&'a self, endpoint: &'a str, region: Option<&'a str>) -> BoxFuture<'a, Result<(), ManagedError>>;
}

/// What a push to a managed registry needs, for one push: kept no longer than the push, never logged.
pub struct RegistryLogin {
    /// The host the service pulls from, in the image references recorded (`<account>.dkr.ecr.<region>.amazonaws.com`).
    pub registry: String,
    /// The host the image is pushed to: the registry itself, or what stands in for it (a mirror, an emulator's).
    pub push_to: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("registry", &self.registry)
            .field("push_to", &self.push_to)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A managed image registry (Amazon ECR) that build stages push to for the service to pull.
pub trait ManagedRegistry: Send + Sync {
    /// Logs in and makes sure `repository` exists (created, scanned on push, when it does not);
    /// what it did is written to `log`.
    fn prepare<'a>(
        &'a self,
        registry: &'a Ecr,
        repository: &'a str,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<RegistryLogin, ManagedError>>;

    /// Whether this process may log in to its account's registry, for `sagebrush doctor`.
    fn reachable(&self) -> BoxFuture<'_, Identity>;
}

#[cfg(test)]
pub(crate) mod fake {
    //! A managed service that knows two instance types and runs nothing.

    use super::*;

    pub struct FakeManaged;

    impl ManagedHosting for FakeManaged {
        fn check_instance_type(&self, instance_type: &str) -> Result<(), String> {
            ManagedTraining::check_instance_type(self, instance_type)
        }

        fn deploy<'a>(
            &'a self,
            _: &'a ManagedEndpoint,
            _: &'a mut (dyn AsyncWrite + Unpin + Send),
        ) -> BoxFuture<'a, Result<Hosted, ManagedError>> {
            Box::pin(async { Err("the fake hosts nothing".into()) })
        }

        fn invoke<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
            _: &'a str,
            _: Vec<u8>,
        ) -> BoxFuture<'a, Result<Vec<u8>, ManagedError>> {
            Box::pin(async { Err("the fake hosts nothing".into()) })
        }

        fn serves<'a>(&'a self, _: &'a str, _: Option<&'a str>) -> BoxFuture<'a, Result<Option<String>, ManagedError>> {
            Box::pin(async { Ok(None) })
        }

        fn delete<'a>(&'a self, _: &'a str, _: Option<&'a str>) -> BoxFuture<'a, Result<(), ManagedError>> {
            Box::pin(async { Ok(()) })
        }
    }

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
