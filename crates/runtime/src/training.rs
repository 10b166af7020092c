//! Training jobs: run `train` under the contract, stream its log, extract metrics, enforce the max runtime.
//!
//! The engine drives a job through three calls so it can persist each secondary
//! status before acting on it: [`prepare`] (Downloading), [`run`] (Training) and
//! [`package`] (Uploading).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use crate::opt_ml::OptMl;
use crate::process::{self, Output};
use crate::sandbox::Spec;
use crate::{Algorithm, Error, archive, docker, io_error};

/// How long a stopped job gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A training job's definition.
#[derive(Clone, Debug)]
pub struct TrainingJob {
    /// `<pipeline>-<run>`.
    pub name: String,
    /// What trains.
    pub algorithm: Algorithm,
    /// Channel name to a file or directory.
    pub channels: BTreeMap<String, PathBuf>,
    /// Hyperparameters; every value a string, as SageMaker passes them.
    pub hyperparameters: BTreeMap<String, String>,
    /// The job is stopped past this.
    pub max_runtime: Duration,
    /// Metric name and a regex whose first group is the value.
    pub metric_definitions: Vec<(String, Regex)>,
    /// The sagebrush binary, which runs built-in algorithms.
    pub sagebrush_exe: PathBuf,
    /// CPU and memory of a container job.
    pub limits: docker::Limits,
    /// Who the job's container belongs to.
    pub labels: docker::Labels,
    /// Variables set in the job's environment (SageMaker's `Environment`), besides `TRAINING_JOB_NAME`.
    pub environment: Vec<(String, String)>,
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `train` exited 0.
    Completed,
    /// `train` failed, or could not start.
    Failed,
    /// It was cancelled.
    Stopped,
    /// It ran past its max runtime and was stopped.
    MaxRuntimeExceeded,
}

/// How a job ended, and what it reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub end: End,
    /// Why it failed or stopped.
    pub failure_reason: Option<String>,
    /// The last value each metric definition matched.
    pub metrics: BTreeMap<String, f64>,
}

/// Lays out the job's `/opt/ml` under `work_dir` (the Downloading step).
pub fn prepare(job: &TrainingJob, work_dir: &Path) -> Result<OptMl, Error> {
    let mut hyperparameters = job.hyperparameters.clone();
    if let Algorithm::Builtin(name) = &job.algorithm {
        hyperparameters.entry("algorithm".to_owned()).or_insert_with(|| name.clone());
    }
    OptMl::create_for_training(&work_dir.join("opt_ml"), &job.channels, &hyperparameters)
}

/// Runs a built-in algorithm's or a process folder's `train` as a child of this process, in its
/// own namespaces, until it exits, the max runtime passes, or `cancel` turns true (the Training step).
pub async fn run_child(
    job: &TrainingJob,
    opt_ml: &OptMl,
    log: &mut (impl AsyncWrite + Unpin),
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, Error> {
    let started = start_child(job, opt_ml).await;
    supervise(job, opt_ml, started, log, cancel).await
}

/// Runs `<image> train` as a container of the Docker Engine, as [`run_child`] runs a child.
pub async fn run_container(
    job: &TrainingJob,
    image: &str,
    opt_ml: &OptMl,
    log: &mut (impl AsyncWrite + Unpin),
    cancel: watch::Receiver<bool>,
) -> Result<Outcome, Error> {
    let started = start_container(job, image, opt_ml).await;
    supervise(job, opt_ml, started, log, cancel).await
}

async fn supervise(
    job: &TrainingJob,
    opt_ml: &OptMl,
    started: Result<Running, Error>,
    log: &mut (impl AsyncWrite + Unpin),
    mut cancel: watch::Receiver<bool>,
) -> Result<Outcome, Error> {
    let mut running = match started {
        Ok(running) => running,
        // A job that could not start counts as failed, as SageMaker reports a bad image.
        Err(e @ (Error::Docker(_) | Error::Isolation(_))) => return Ok(failed_to_start(e)),
        Err(e) => return Err(e),
    };
    let mut lines = running.lines()?;
    let mut streams_open = true;
    let mut metrics = BTreeMap::new();
    let deadline = tokio::time::sleep(job.max_runtime);
    tokio::pin!(deadline);

    let ended = loop {
        tokio::select! {
            line = lines.recv(), if streams_open => match line {
                Some(line) => {
                    record_metrics(&line, &job.metric_definitions, &mut metrics);
                    log.write_all(line.as_bytes()).await.map_err(io_error(&opt_ml.root))?;
                    log.write_all(b"\n").await.map_err(io_error(&opt_ml.root))?;
                }
                None => streams_open = false,
            },
            // Wait for the exit only once the output is drained, so no log line is lost.
            code = running.wait(), if !streams_open => break Ended::Exited(code?),
            () = &mut deadline => break Ended::MaxRuntime,
            changed = cancel.changed() => {
                if changed.is_err() || *cancel.borrow() { break Ended::Cancelled }
            }
        }
    };
    let _ = log.flush().await;

    let outcome = |end, reason: Option<String>| Outcome { end, failure_reason: reason, metrics: metrics.clone() };
    Ok(match ended {
        Ended::Exited(Some(0)) => outcome(End::Completed, None),
        Ended::Exited(code) => {
            let reason = opt_ml.failure_reason().unwrap_or_else(|| match code {
                Some(code) => {
                    format!("AlgorithmError: train exited with status {code} and wrote no /opt/ml/output/failure")
                }
                None => "AlgorithmError: train was killed by a signal".to_owned(),
            });
            outcome(End::Failed, Some(reason))
        }
        Ended::MaxRuntime => {
            running.stop().await;
            let reason = format!("MaxRuntimeExceeded: the job ran longer than {:?} and was stopped", job.max_runtime);
            outcome(End::MaxRuntimeExceeded, Some(reason))
        }
        Ended::Cancelled => {
            running.stop().await;
            outcome(End::Stopped, Some("the run was cancelled".to_owned()))
        }
    })
}

/// A started `train`: a child process, or a container (removed when this is dropped, however the job ends).
enum Running {
    Child(tokio::process::Child),
    Container(String),
}

async fn start_child(job: &TrainingJob, opt_ml: &OptMl) -> Result<Running, Error> {
    let environment = job.environment.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let environment: Vec<(&str, &str)> =
        std::iter::once(("TRAINING_JOB_NAME", job.name.as_str())).chain(environment).collect();
    match &job.algorithm {
        Algorithm::Builtin(_) => {
            let mut command = process::guarded(&job.sagebrush_exe);
            command
                .args(["algorithm", "train", "--opt-ml"])
                .arg(&opt_ml.root)
                .envs(environment)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            Ok(Running::Child(process::spawn(command, &job.sagebrush_exe.display().to_string())?))
        }
        Algorithm::Process(program) => {
            let spec = Spec {
                opt_ml: opt_ml.root.clone(),
                program: program.clone(),
                serve_port: None,
                // Other jobs' files are in the home.
                hidden: vec![PathBuf::from(&job.labels.home)],
                command: vec!["train".into()],
            };
            let sandboxed = process::sandboxed(&job.sagebrush_exe, &spec, &environment, Output::Piped).await?;
            Ok(Running::Child(sandboxed.child))
        }
        Algorithm::Image(image) => Err(Error::Docker(format!("{image} is an image; it trains in a container"))),
    }
}

async fn start_container(job: &TrainingJob, image: &str, opt_ml: &OptMl) -> Result<Running, Error> {
    docker::ensure_image(image).await?;
    let name = docker::unique_name(&format!("train-{}", job.name));
    let env: Vec<(&str, &str)> = std::iter::once(("TRAINING_JOB_NAME", job.name.as_str()))
        .chain(job.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let spec = docker::ContainerSpec {
        name: &name,
        image,
        command: "train",
        labels: &job.labels,
        opt_ml: &opt_ml.root,
        limits: job.limits,
        env: &env,
        publish: false,
    };
    docker::start(&spec).await?;
    Ok(Running::Container(name))
}

impl Running {
    /// stdout and stderr, line by line, in one channel that closes when both end.
    fn lines(&mut self) -> Result<tokio::sync::mpsc::Receiver<String>, Error> {
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        match self {
            Running::Child(child) => {
                if let Some(stdout) = child.stdout.take() {
                    tokio::spawn(forward_lines(stdout, sender.clone()));
                }
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(forward_lines(stderr, sender));
                }
            }
            Running::Container(name) => {
                let output = docker::follow_logs(name)?.map(Ok::<_, std::io::Error>);
                tokio::spawn(forward_lines(tokio_util::io::StreamReader::new(Box::pin(output)), sender));
            }
        }
        Ok(receiver)
    }

    /// The exit code; `None` when a signal ended the process.
    async fn wait(&mut self) -> Result<Option<i64>, Error> {
        match self {
            Running::Child(child) => {
                let status = child.wait().await.map_err(io_error(Path::new("train")))?;
                Ok(status.code().map(i64::from))
            }
            Running::Container(name) => docker::wait(name).await.map(Some),
        }
    }

    async fn stop(&mut self) {
        match self {
            Running::Child(child) => process::stop(child, STOP_GRACE).await,
            Running::Container(name) => docker::stop(name, STOP_GRACE).await,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Container(name) = self {
            docker::remove_detached(name);
        }
    }
}

/// Packs `/opt/ml/model` into `work_dir/model.tar.gz` (the Uploading step).
pub fn package(opt_ml: &OptMl, work_dir: &Path) -> Result<PathBuf, Error> {
    let archive = work_dir.join("model.tar.gz");
    archive::pack(&opt_ml.model_dir(), &archive)?;
    Ok(archive)
}

/// A job that could not start counts as failed, as SageMaker reports a bad image.
fn failed_to_start(error: Error) -> Outcome {
    Outcome { end: End::Failed, failure_reason: Some(format!("ClientError: {error}")), metrics: BTreeMap::new() }
}

enum Ended {
    Exited(Option<i64>),
    MaxRuntime,
    Cancelled,
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin, sender: tokio::sync::mpsc::Sender<String>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if sender.send(line).await.is_err() {
            break;
        }
    }
}

/// Applies each metric regex to a log line; the first capture group is the value, the last match wins.
fn record_metrics(line: &str, definitions: &[(String, Regex)], metrics: &mut BTreeMap<String, f64>) {
    for (name, regex) in definitions {
        if let Some(value) =
            regex.captures(line).and_then(|c| c.get(1)).and_then(|m| m.as_str().trim().parse::<f64>().ok())
        {
            metrics.insert(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_take_the_last_match_of_the_first_group() {
        let definitions =
            vec![("validation:accuracy".to_owned(), Regex::new("validation_accuracy=([0-9.]+)").unwrap())];
        let mut metrics = BTreeMap::new();
        record_metrics("validation_accuracy=0.5", &definitions, &mut metrics);
        record_metrics("noise", &definitions, &mut metrics);
        record_metrics("epoch 2 validation_accuracy=0.75;", &definitions, &mut metrics);
        assert_eq!(metrics.get("validation:accuracy"), Some(&0.75));
    }
}
