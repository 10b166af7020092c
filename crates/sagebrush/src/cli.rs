//! The command line, as clap derive structs; doc comments are the help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use names::Name;

/// sagebrush: from a pipeline file to a smoke-tested production endpoint, on one machine.
///
/// Exit codes: 0 success, 1 a run failed or an operation failed, 2 invalid input
/// (pipeline file, parameter, usage), 3 the run was cancelled, 4 the run waits for an approval.
#[derive(Debug, Parser)]
#[command(name = "sagebrush", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Where state, artifacts and logs live.
    #[arg(long, env = "SAGEBRUSH_HOME", global = true, default_value_os_t = default_home())]
    pub home: PathBuf,

    /// Where new models and SBOMs are stored: a folder, or `s3://bucket/prefix` (builds with
    /// `--features aws`; credentials, region and `AWS_ENDPOINT_URL` from the environment).
    /// Default: the home's `artifacts` folder.
    #[arg(long, env = "SAGEBRUSH_ARTIFACTS", global = true, value_name = "FOLDER|S3_URI")]
    pub artifacts: Option<String>,

    /// Where the state lives: `postgres://user:password@host:port/db` for a Postgres database that
    /// several servers share, or a SQLite file. Default: the home's `state.db`.
    #[arg(long, env = "SAGEBRUSH_DATABASE", global = true, hide_env_values = true, value_name = "URL|FILE")]
    pub database: Option<String>,

    /// The server to call instead of the one running for --home (e.g. http://ml.internal:8080).
    #[arg(long, env = "SAGEBRUSH_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,

    /// The token to present to the server (`sagebrush token create` makes one); needed off loopback.
    #[arg(long, env = "SAGEBRUSH_TOKEN", global = true, hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a project's pipeline, then keep serving its endpoints until Ctrl-C.
    Up(UpArgs),
    /// Serve the HTTP API and every recorded endpoint until Ctrl-C.
    Server(ServerArgs),
    /// Run a project's pipeline once (through the running server, if there is one).
    Run(RunArgs),
    /// List recent runs.
    Runs(RunsArgs),
    /// Show one run: status, reason, parameters, stages.
    Show(RunRef),
    /// Print a run's stage logs.
    Logs(LogsArgs),
    /// Ask a running run to stop.
    Cancel(RunRef),
    /// Approve a run waiting at its approval stage: its model version becomes Approved and the run
    /// goes on (here, when no server runs).
    Approve(DecideArgs),
    /// Reject a run waiting at its approval stage: its model version becomes Rejected and the run
    /// fails before the stages after it.
    Reject(DecideArgs),
    /// Start a new run with the parameters of an earlier one.
    Retry(RetryArgs),
    /// List endpoints and what they serve.
    Endpoints(EndpointsArgs),
    /// Delete an endpoint: stop serving it (in-flight requests finish) and forget it.
    DeleteEndpoint(DeleteEndpointArgs),
    /// Deploy a registered model version to an endpoint on the running server, with a traffic policy.
    Deploy(DeployArgs),
    /// Set the traffic weights of an endpoint's variants, e.g. `sagebrush weights prod AllTraffic=0.9 B=0.1`;
    /// variants not named keep theirs, and no instance restarts.
    Weights(WeightsArgs),
    /// What an endpoint served and when: model versions with their run, commit and approval
    /// (`--at` answers "what served here at time T").
    History(HistoryArgs),
    /// How far an endpoint's captured requests have drifted from its model's training data: the
    /// population stability index of each feature, and an SVG of both distributions with `--svg`.
    Drift(DriftArgs),
    /// Remove each project's runs past its `[pipeline] keep_runs` (50 by default) with their logs,
    /// work folders, models and images, keeping whatever an endpoint serves or was approved.
    Gc(GcArgs),
    /// Check what this configuration needs (state database, artifact store, Docker Engine,
    /// registry, git), each failure with what to do; exits 1 if one fails.
    Doctor(JsonArgs),
    /// Print the address of the server's local image registry, which stands in for ECR (started if
    /// needed): `docker push <address>/<repository>:<tag>`, then name the image
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>` in SageMaker requests.
    Registry(JsonArgs),
    /// Send a request to an endpoint and print the answer.
    Invoke(InvokeArgs),
    /// Add, list and remove the projects the server may run.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// List registered model versions with their lineage.
    Models(ModelsArgs),
    /// Make, list and revoke the API tokens callers present off loopback.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the calls that changed something: who, what, and how it was answered.
    Audit(AuditArgs),
    /// List the changes of runs, stages, model versions and endpoints, oldest first
    /// (`GET /api/v1/events` with `Accept: text/event-stream` follows them live).
    Events(EventsArgs),
    /// Print a shell completion script, e.g. `sagebrush completions bash > /etc/bash_completion.d/sagebrush`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The built-in algorithms as a SageMaker container entry point.
    #[command(subcommand)]
    Algorithm(AlgorithmCommand),
    /// The process runtime's sandbox, run by sagebrush itself as the first process of a job's
    /// or model server's namespaces: sets up /opt/ml, the program folder and private /tmp, /run
    /// and /var/log, then runs the command.
    #[command(hide = true)]
    Sandbox(SandboxArgs),
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The job's or instance's own folder, bound on /opt/ml.
    #[arg(long)]
    pub opt_ml: PathBuf,
    /// The folder with `train` and `serve`.
    #[arg(long)]
    pub program: PathBuf,
    /// Where the folder is put: the working directory, first on PATH.
    #[arg(long)]
    pub workdir: PathBuf,
    /// To serve: the port the server listens on, in a network namespace of its own.
    #[arg(long)]
    pub serve_port: Option<u16>,
    /// A folder of this machine to hide (covered by an empty tmpfs); repeatable.
    #[arg(long = "hide")]
    pub hidden: Vec<PathBuf>,
    /// `train` or `serve`.
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on. Off loopback every caller must present a token, and the server
    /// refuses to start until one exists (`sagebrush token create NAME --role admin`).
    #[arg(long, env = "SAGEBRUSH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Listen on a non-loopback address with no authentication at all. Anyone who can reach the
    /// port can run pipelines, and so any command, as this user. A warning is printed at every start.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// An endpoint anyone may invoke with no token, even off loopback. Repeatable, or comma-separated.
    #[arg(long = "public-endpoint", value_name = "ENDPOINT", value_delimiter = ',')]
    pub public_endpoints: Vec<Name>,
    /// A host name clients reach this server by (through DNS or a proxy), besides localhost and IP
    /// addresses; requests naming any other host are refused. Repeatable, or comma-separated.
    #[arg(long = "public-name", env = "SAGEBRUSH_PUBLIC_NAME", value_name = "HOST", value_delimiter = ',')]
    pub public_names: Vec<String>,
    /// A project folder the API may run (besides those added with `sagebrush project add`). Repeatable.
    #[arg(long = "project", value_name = "FOLDER")]
    pub projects: Vec<PathBuf>,
    /// Seconds a connection gets to send a request's headers, from when it opens or finished its
    /// last request: a silent or idle keep-alive connection is closed after this.
    #[arg(long, env = "SAGEBRUSH_HEADER_TIMEOUT", value_name = "SECONDS", default_value_t = 30.0,
          value_parser = positive_seconds)]
    pub header_timeout: f64,
    /// Seconds a request gets to send its whole body; a slower one is answered 408. An S3 upload,
    /// which may be gigabytes, gets this long between pieces instead.
    #[arg(long, env = "SAGEBRUSH_BODY_TIMEOUT", value_name = "SECONDS", default_value_t = 60.0,
          value_parser = positive_seconds)]
    pub body_timeout: f64,
    /// Open connections at most; past it the longest-idle connection is closed, or (all busy) a new
    /// one answered 503. Default: what the open-files limit leaves room for, at most 16384.
    #[arg(long, env = "SAGEBRUSH_MAX_CONNECTIONS", value_name = "COUNT")]
    pub max_connections: Option<usize>,
    /// How many runs execute at once; more wait in the queue, and a project's runs go one at a
    /// time in the order they were submitted. Default: half the cores, at least 1.
    #[arg(long, env = "SAGEBRUSH_MAX_RUNS", value_name = "COUNT")]
    pub max_runs: Option<usize>,
    /// Seconds between health checks of each endpoint instance; an instance that fails two
    /// in a row is replaced.
    #[arg(long, env = "SAGEBRUSH_HEALTH_INTERVAL", value_name = "SECONDS", default_value_t = 5.0,
          value_parser = positive_seconds)]
    pub health_interval: f64,
}

impl ServerArgs {
    /// What the server is to be.
    pub fn config(&self) -> server::Config {
        server::Config {
            listen: self.listen,
            insecure_no_auth: self.insecure_no_auth,
            public_endpoints: self.public_endpoints.iter().map(Name::to_string).collect(),
            public_names: self.public_names.clone(),
            projects: self.projects.clone(),
            header_timeout: std::time::Duration::from_secs_f64(self.header_timeout),
            body_timeout: std::time::Duration::from_secs_f64(self.body_timeout),
            max_connections: self.max_connections,
        }
    }
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(seconds),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The project folder (holding sagebrush.toml) or the pipeline file.
    pub project: PathBuf,
    /// Set a pipeline parameter, e.g. `-p max_leaf_nodes=3`. Repeatable.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The project folder (holding sagebrush.toml), the pipeline file, or the name of a project
    /// added with `sagebrush project add`.
    pub project: PathBuf,
    /// Set a pipeline parameter, e.g. `-p max_leaf_nodes=3`. Repeatable.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Print the run as JSON when it ends instead of progress lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this project's runs.
    pub project: Option<Name>,
    /// How many runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The project (pipeline name).
    pub project: Name,
    /// The run number; the latest run if left out.
    pub number: Option<i64>,
    /// Why: recorded with who decided and when.
    #[arg(long)]
    pub reason: String,
    /// Print the run as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunRef {
    /// The project (pipeline name).
    pub project: Name,
    /// The run number; the latest run if left out.
    pub number: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The project (pipeline name).
    pub project: Name,
    /// The run number; the latest run if left out.
    pub number: Option<i64>,
    /// Only this stage's log.
    #[arg(long)]
    pub stage: Option<Name>,
    /// Keep printing as the run goes on, until it ends.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The project (pipeline name).
    pub project: Name,
    /// The run to retry.
    pub number: i64,
    /// Rerun from this stage, reusing the outputs of the stages before it.
    #[arg(long)]
    pub from: Option<Name>,
    /// Print the run as JSON when it ends instead of progress lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    /// Only endpoints that have answered no request for this many seconds (or are not served).
    #[arg(long, value_name = "SECONDS")]
    pub idle: Option<u64>,
    /// Print JSON, with each served endpoint's variants, weights and counters.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The endpoint's name.
    pub endpoint: Name,
    /// The model group to deploy from.
    pub model_group: Name,
    /// The version to deploy (default: the newest).
    #[arg(long, value_name = "VERSION")]
    pub model_version: Option<i64>,
    /// How traffic moves from what the endpoint serves now.
    #[arg(long, value_parser = ["all-at-once", "canary", "linear"], default_value = "all-at-once")]
    pub traffic: String,
    /// The canary's share, or each linear step, in percent.
    #[arg(long, value_name = "PERCENT")]
    pub traffic_percent: Option<f64>,
    /// Seconds each step is watched before the next.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub bake: f64,
    /// Roll back when the new model's error share (0 to 1) goes over this while baking.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Roll back when the new model's p99 latency goes over this many milliseconds while baking.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Put the model in this variant; with --weight, the endpoint's other variants stay (A/B).
    #[arg(long)]
    pub variant: Option<Name>,
    /// The variant's weight next to the others'.
    #[arg(long, requires = "variant")]
    pub weight: Option<f64>,
    /// Instances to serve it (container and process algorithms).
    #[arg(long, default_value_t = 1)]
    pub instances: u32,
    /// The instance type of each container instance.
    #[arg(long)]
    pub instance_type: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The endpoint's name.
    pub endpoint: Name,
    /// Only what it served at this time: 2026-12-01T17:00:00Z, "2026-12-01 17:00:00" (UTC) or epoch ms.
    #[arg(long, value_parser = crate::commands::parse_time)]
    pub at: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The endpoint's name; it must capture its requests (`capture_percent` on its deploy stage).
    pub endpoint: Name,
    /// How many of the newest captured rows are compared.
    #[arg(long, default_value_t = server::service::DRIFT_WINDOW)]
    pub window: usize,
    /// A feature whose PSI is above this has drifted (0.1 is a moderate shift, 0.2 a real one).
    #[arg(long, default_value_t = pipeline::DEFAULT_DRIFT_THRESHOLD)]
    pub threshold: f64,
    /// Also write the training and captured distributions of each feature to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// The endpoint's name.
    pub endpoint: Name,
    /// `VARIANT=WEIGHT`, a weight relative to the other variants' (0 or more). Repeatable.
    #[arg(required = true, value_name = "VARIANT=WEIGHT", value_parser = variant_weight)]
    pub weights: Vec<(Name, f64)>,
    /// Print the endpoint as JSON.
    #[arg(long)]
    pub json: bool,
}

fn variant_weight(text: &str) -> Result<(Name, f64), String> {
    let (variant, weight) = text.split_once('=').ok_or("expected VARIANT=WEIGHT, e.g. B=0.1")?;
    let variant = Name::parse(variant).map_err(|e| e.to_string())?;
    match weight.parse::<f64>() {
        Ok(weight) if weight >= 0.0 && weight.is_finite() => Ok((variant, weight)),
        _ => Err(format!("the weight of {variant} must be a number of 0 or more, not `{weight}`")),
    }
}

#[derive(Debug, Args)]
pub struct DeleteEndpointArgs {
    /// The endpoint's name.
    pub name: Name,
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Only this model group.
    pub group: Option<Name>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The endpoint name.
    pub endpoint: Name,
    /// The request body: a file, or `-` for standard input.
    #[arg(long, short = 'd', default_value = "-")]
    pub data: PathBuf,
    /// The request's Content-Type.
    #[arg(long, default_value = "text/csv")]
    pub content_type: String,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Let the server run a project: a folder (holding sagebrush.toml) on the server's machine,
    /// or a git repository's branch, which the server mirrors and builds commit by commit. Runs
    /// name it by its pipeline's name: `sagebrush run <name>`.
    Add {
        /// The project folder, or a git repository (`https://...`, `ssh://...`, `git@host:...`,
        /// `file://...`; a local repository with --branch).
        source: String,
        /// The branch a git project builds (default: main).
        #[arg(long)]
        branch: Option<String>,
    },
    /// List the projects the server may run.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop letting the server run a project (its runs, models and endpoints stay).
    Remove {
        /// The project (pipeline name).
        name: Name,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it, once: only its hash is kept.
    Create {
        /// What the token is called in listings and the audit (1 to 63 letters, digits and `-`).
        name: Name,
        /// viewer reads; operator also runs, cancels, retries and deploys; admin also manages
        /// projects and tokens.
        #[arg(long)]
        role: store::Role,
        /// Print JSON (with the token).
        #[arg(long)]
        json: bool,
    },
    /// List the tokens by name and role.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: the server refuses it from the next request on.
    Revoke { name: Name },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this project's events.
    pub project: Option<Name>,
    /// Only events after this id.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// How many events to list.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many entries to list, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlgorithmCommand {
    /// Train under the SageMaker contract: read /opt/ml/input, write /opt/ml/model.
    Train {
        /// The /opt/ml directory.
        #[arg(long, default_value = "/opt/ml")]
        opt_ml: PathBuf,
    },
    /// Serve /opt/ml/model on /ping and /invocations.
    Serve {
        /// The /opt/ml directory.
        #[arg(long, default_value = "/opt/ml")]
        opt_ml: PathBuf,
        /// Port to listen on (all interfaces, as a container must).
        #[arg(long, env = "SAGEMAKER_BIND_TO_PORT", default_value_t = 8080)]
        port: u16,
    },
}

fn default_home() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".sagebrush"),
        None => PathBuf::from(".sagebrush"),
    }
}
