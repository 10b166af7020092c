//! What a pipeline file declares, after validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use names::Name;

use crate::parameters::{Parameter, Value};

/// A validated `sagebrush.toml`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it was read from.
    pub path: PathBuf,
    /// The project name: runs are numbered per name.
    pub name: Name,
    pub description: Option<String>,
    pub parameters: Vec<Parameter>,
    /// What `train` stages run; required when there is one.
    pub algorithm: Option<Algorithm>,
    /// What starts its runs besides a person.
    pub triggers: crate::Triggers,
    /// Who is told of its events.
    pub notify: Vec<crate::Notify>,
    /// Whether data paths may be absolute or climb out of the project (`[pipeline] allow_absolute_paths`).
    pub allow_absolute_paths: bool,
    /// How many of the newest ended runs keep their files and records (`[pipeline] keep_runs`).
    pub keep_runs: usize,
    /// The file's text: stages are built from it again once parameter values are known.
    pub(crate) source: String,
}

/// The training algorithm of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// One of sagebrush's own algorithms, run in-process.
    Builtin(BuiltinAlgorithm),
    /// One of sagebrush's own algorithms in its `FROM scratch` container image (`container = true`).
    BuiltinImage(BuiltinAlgorithm),
    /// A folder (relative to the project) with `train` and `serve` executables, run in a sandbox
    /// with the folder at `workdir` (where its image would have it: `/opt/program` unless told).
    Process { dir: String, workdir: PathBuf },
    /// A container image run as `<image> train` / `<image> serve`: the run's `build` stage makes it, or it already exists.
    Image { image: String },
}

/// The algorithms sagebrush ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinAlgorithm {
    DecisionTree,
    RandomForest,
}

impl BuiltinAlgorithm {
    pub const ALL: [BuiltinAlgorithm; 2] = [BuiltinAlgorithm::DecisionTree, BuiltinAlgorithm::RandomForest];

    /// The name used in files and in the `algorithm` hyperparameter.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinAlgorithm::DecisionTree => "decision-tree",
            BuiltinAlgorithm::RandomForest => "random-forest",
        }
    }
}

/// A pipeline with its parameter values substituted into every stage.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub parameters: BTreeMap<String, Value>,
    pub stages: Vec<Stage>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Unique within the pipeline; defaults to the kind, then `kind-2`, `kind-3`.
    pub name: Name,
    pub kind: StageKind,
    /// Longest one attempt may take.
    pub timeout: Option<Duration>,
    /// Further attempts after a failure.
    pub retries: u32,
}

/// Where a training channel's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A file or folder relative to the source.
    Path(String),
    /// `s3://bucket/key-or-prefix`, downloaded as SageMaker does before the job starts.
    S3(String),
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Path(path) | Channel::S3(path) => f.write_str(path),
        }
    }
}

/// What a stage does, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum StageKind {
    /// Fix the source: the project folder, or a git repository at a revision.
    Checkout { repo: Option<String>, rev: Option<String> },
    /// A training job under the SageMaker contract.
    Train {
        /// Channel name to where its data is.
        channels: BTreeMap<String, Channel>,
        /// Always strings, as SageMaker passes them.
        hyperparameters: BTreeMap<String, String>,
        max_runtime: Duration,
        metrics: Vec<MetricDefinition>,
        /// A SageMaker instance type: a local container job's CPU and memory, or what SageMaker runs it on.
        instance_type: Option<String>,
        /// Where the job runs.
        backend: TrainingBackend,
    },
    /// Build the algorithm's image from a folder with a Dockerfile, tag it `<registry>/<image>:<run>`, push it.
    Build { context: String, registry: Registry },
    /// Make the trained model a version in a model group.
    Register { model_group: Name },
    /// Serve the registered model on an endpoint, replacing what it served.
    Deploy {
        endpoint: Name,
        /// How long a new instance may take to answer `/ping` (SageMaker's container startup health check timeout).
        startup_timeout: Option<Duration>,
        /// How many instances serve it (SageMaker's `InitialInstanceCount`); requests are spread across them.
        instances: u32,
        /// The instance type whose CPU and memory each container gets (SageMaker's `InstanceType`).
        instance_type: Option<String>,
        /// How traffic moves to the new model when the endpoint already serves one.
        policy: DeployPolicy,
        /// The production variant this model goes into (SageMaker's `VariantName`).
        variant: Option<Name>,
        /// Set for an A/B deploy: this variant gets this weight and the endpoint's other variants stay.
        weight: Option<f64>,
        /// Delete the endpoint when the run that made it ends (a test endpoint).
        delete_after_run: bool,
        /// Delete the endpoint this long after it was deployed.
        ttl: Option<Duration>,
        /// A multi-model endpoint: every `model.tar.gz` in this folder, picked per request.
        multi_model: Option<MultiModel>,
        /// A serial inference pipeline: these endpoints in order, each answer the next request.
        chain: Vec<Name>,
        /// The percentage of requests written with their answers to `<home>/capture/<endpoint>/`.
        capture_percent: Option<f64>,
        /// Where the endpoint is hosted.
        backend: HostingBackend,
    },
    /// Send labelled rows to an endpoint and check the answers.
    SmokeTest { endpoint: Name, data: String, min_accuracy: Option<f64> },
    /// Stop the run unless metrics are within bounds.
    Gate {
        require: Vec<Threshold>,
        /// Packages that must not be in the run's image (names as its SBOM lists them: Debian or PyPI).
        deny_packages: Vec<String>,
    },
    /// Wait for enough ground truth on an endpoint's two variants, then keep the better one:
    /// promote the challenger if it is significantly better, else roll it back.
    AbTest {
        endpoint: Name,
        control: Name,
        challenger: Name,
        /// Labelled answers each variant needs before the test decides.
        min_samples: u64,
        /// How sure the test must be that the variants differ (1 - the p-value threshold).
        confidence: f64,
    },
    /// The candidate (the run's test endpoint) against the champion (what `endpoint` serves now)
    /// on the same held-out rows: passes when the candidate is at least as good within `margin`,
    /// or when there is no champion yet.
    Champion { endpoint: Name, candidate: Name, data: String, metric: ChampionMetric, margin: f64 },
    /// A person approves (or rejects) the model version the run registered, with a reason; the
    /// run waits for them, surviving restarts. Unanswered past `reject_after`, it is rejected.
    Approval { reject_after: Option<Duration> },
    /// Anything else: `sh -c command` in the source folder.
    Shell { command: String },
}

impl StageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StageKind::Checkout { .. } => "checkout",
            StageKind::Build { .. } => "build",
            StageKind::Train { .. } => "train",
            StageKind::Register { .. } => "register",
            StageKind::Deploy { .. } => "deploy",
            StageKind::SmokeTest { .. } => "smoke-test",
            StageKind::Gate { .. } => "gate",
            StageKind::AbTest { .. } => "ab-test",
            StageKind::Champion { .. } => "champion",
            StageKind::Approval { .. } => "approval",
            StageKind::Shell { .. } => "shell",
        }
    }
}

/// Where a build stage pushes its image (`registry = ...`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Registry {
    /// sagebrush's own registry on loopback, started when first needed.
    #[default]
    Local,
    /// A registry's `host[:port]`, pushed to with no login of sagebrush's.
    Host(String),
    /// Amazon ECR, logged in to with the AWS chain's credentials, the repository created when missing.
    Ecr(Ecr),
}

/// An ECR registry: `"ecr"` is the AWS chain's account and region, `<account>.dkr.ecr.<region>.amazonaws.com` one named.
#[derive(Debug, Clone, PartialEq)]
pub struct Ecr {
    /// The 12-digit account (`registryId`); the chain's own when absent.
    pub account: Option<String>,
    /// The chain's region when absent.
    pub region: Option<String>,
}

/// Where a training job runs (`backend = "local"` or `"sagemaker"`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TrainingBackend {
    /// This machine: a child process, or a container of the Docker Engine for an image.
    #[default]
    Local,
    /// An Amazon SageMaker training job: the image from a registry SageMaker can pull (ECR), the
    /// channels and the model on S3.
    SageMaker(SageMakerTraining),
}

/// A SageMaker training job's settings besides the stage's own.
#[derive(Debug, Clone, PartialEq)]
pub struct SageMakerTraining {
    /// The IAM role SageMaker assumes for the job (`RoleArn`).
    pub role: String,
    /// How many instances train (`InstanceCount`).
    pub instance_count: u32,
    /// The storage volume of each instance, in GB (`VolumeSizeInGB`).
    pub volume_size_gb: u32,
    /// The region; otherwise the AWS chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
}

/// Where an endpoint is hosted (`backend = "local"` or `"sagemaker"`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum HostingBackend {
    /// This machine's router, in front of child processes or containers.
    #[default]
    Local,
    /// An Amazon SageMaker endpoint: the image from a registry SageMaker can pull (ECR), the model on S3.
    SageMaker(SageMakerHosting),
}

/// A SageMaker endpoint's settings besides the stage's own.
#[derive(Debug, Clone, PartialEq)]
pub struct SageMakerHosting {
    /// The IAM role SageMaker assumes to pull the image and read the model (`ExecutionRoleArn`).
    pub role: String,
    /// The region; otherwise the AWS chain's.
    pub region: Option<String>,
    /// CloudWatch alarms that roll an update back (`AutoRollbackConfiguration`).
    pub alarms: Vec<String>,
}

/// What a champion gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChampionMetric {
    /// Share of rows whose answer is the label (higher is better).
    Accuracy,
    /// Root mean squared error of numeric answers (lower is better).
    Rmse,
}

impl ChampionMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            ChampionMetric::Accuracy => "accuracy",
            ChampionMetric::Rmse => "rmse",
        }
    }
}

/// SageMaker's deployment guardrails: how traffic shifts to a new model, how long each step bakes,
/// and the alarms that roll it back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeployPolicy {
    pub traffic: Traffic,
    /// How long each step (and the end, with the old model still up) is watched before going on.
    pub bake: Duration,
    /// Roll back when the new model's share of 5xx answers goes over this (0 to 1).
    pub max_error_rate: Option<f64>,
    /// Roll back when the new model's p99 latency goes over this, in milliseconds.
    pub max_p99_ms: Option<f64>,
}

/// A multi-model endpoint's models and how much of them stays in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiModel {
    /// The folder (relative to the project) holding `<name>.tar.gz` files.
    pub dir: String,
    pub memory_budget_bytes: u64,
}

/// How traffic shifts from the old model to the new one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Traffic {
    /// Everything at once (after the new instances answer `/ping`).
    #[default]
    AllAtOnce,
    /// This percentage first, then the rest.
    Canary { percent: f64 },
    /// Steps of this percentage until all.
    Linear { percent: f64 },
}

impl Traffic {
    /// The share of traffic (0 to 1) the new model has after each step; the last is 1.
    pub fn steps(&self) -> Vec<f64> {
        match *self {
            Traffic::AllAtOnce => vec![1.0],
            Traffic::Canary { percent } => vec![percent / 100.0, 1.0],
            Traffic::Linear { percent } => {
                let step = percent / 100.0;
                let mut steps: Vec<f64> = (1..).map(|i| i as f64 * step).take_while(|s| *s < 1.0 - 1e-9).collect();
                steps.push(1.0);
                steps
            }
        }
    }
}

/// A metric read from training log lines: the first capture group of `regex`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDefinition {
    pub name: String,
    pub regex: String,
}

/// A bound a gate enforces on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}
