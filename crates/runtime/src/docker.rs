//! Containers through the Docker Engine: build, push, `<image> train`, `<image> serve`, and clean-up by label.
//!
//! The engine is driven with the `docker` CLI, the same client a user has: its output is what the
//! stage logs show, and `docker run`'s signal proxy turns a stopped job into SIGTERM in the container.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::{Error, process};

/// Every container sagebrush starts carries this label, valued with the home directory it belongs to.
pub const HOME_LABEL: &str = "dev.sagebrush.home";
/// And this one, valued with the identity of the sagebrush process that started it.
pub const PROCESS_LABEL: &str = "dev.sagebrush.process";

/// CPU and memory for a SageMaker instance type, as `docker run --cpus/--memory` take them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub cpus: f64,
    pub memory_mib: u64,
}

/// The instance types sagebrush knows, with SageMaker's vCPU and memory; limits are capped at the host's size by Docker.
pub const INSTANCE_TYPES: &[(&str, Limits)] = &[
    ("ml.t3.medium", Limits { cpus: 2.0, memory_mib: 4096 }),
    ("ml.m5.large", Limits { cpus: 2.0, memory_mib: 8192 }),
    ("ml.m5.xlarge", Limits { cpus: 4.0, memory_mib: 16384 }),
    ("ml.c5.xlarge", Limits { cpus: 4.0, memory_mib: 8192 }),
];

/// The workshop's training instance.
pub const DEFAULT_INSTANCE_TYPE: &str = "ml.m5.large";

pub fn limits(instance_type: Option<&str>) -> Result<Limits, Error> {
    let instance_type = instance_type.unwrap_or(DEFAULT_INSTANCE_TYPE);
    INSTANCE_TYPES.iter().find(|(name, _)| *name == instance_type).map(|(_, limits)| *limits).ok_or_else(|| {
        let known: Vec<&str> = INSTANCE_TYPES.iter().map(|(name, _)| *name).collect();
        Error::Docker(format!("unknown instance_type `{instance_type}`; sagebrush knows {}", known.join(", ")))
    })
}

/// A `docker` command, with the engine's connection taken from the environment as the CLI does.
pub fn command() -> Command {
    let mut command = Command::new("docker");
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// `docker run` for a job or instance: labelled, with `opt_ml` on `/opt/ml`, CPU and memory limited.
pub fn run_command(name: &str, labels: &Labels, opt_ml: &Path, limits: Limits, env: &[(&str, &str)]) -> Command {
    let mut command = process::guarded("docker");
    let cpus = limits.cpus.min(std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64));
    command
        .args(["run", "--name", name, "--label"])
        .arg(format!("{HOME_LABEL}={}", labels.home))
        .arg("--label")
        .arg(format!("{PROCESS_LABEL}={}", labels.process))
        .arg("--volume")
        .arg(format!("{}:/opt/ml", opt_ml.display()))
        .arg(format!("--cpus={cpus}"))
        .arg(format!("--memory={}m", limits.memory_mib));
    for (key, value) in env {
        command.arg("--env").arg(format!("{key}={value}"));
    }
    command
}

/// A container name no other job or instance has.
pub fn unique_name(prefix: &str) -> String {
    let clean: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("sagebrush-{clean}-{}", crate::unique_suffix())
}

/// Runs a `docker` subcommand to completion, returning trimmed stdout or an error naming the command and its stderr.
pub async fn docker(args: &[&str]) -> Result<String, Error> {
    let output =
        command().args(args).output().await.map_err(|source| Error::Spawn { program: "docker".to_owned(), source })?;
    if !output.status.success() {
        return Err(Error::Docker(format!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Checks that the engine answers, with what to do when it does not.
pub async fn check_engine() -> Result<(), Error> {
    docker(&["version", "--format", "{{.Server.Version}}"]).await.map(|_| ()).map_err(|e| {
        Error::Docker(format!("the Docker Engine is not reachable ({e}); start it (systemctl start docker) and retry"))
    })
}

/// Removes a container whether or not it runs; a container that is already gone is not an error.
pub async fn remove(name: &str) {
    let _ = docker(&["rm", "--force", "--volumes", name]).await;
}

/// Starts removing a container without waiting, for `Drop`; start-up reconciliation catches what this misses.
pub fn remove_detached(name: &str) {
    let mut command = command();
    command.args(["rm", "--force", name]).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(false);
    // tokio reaps the child in the background, so no zombie is left; outside a runtime there is nothing to reap it.
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = command.spawn();
    } else {
        let _ = std::process::Command::new("docker").args(["rm", "--force", name]).status();
    }
}

/// Who a container belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// The home directory.
    pub home: String,
    /// The sagebrush process, `pid:start-time`.
    pub process: String,
}

/// Removes the containers of `home` for which `keep(process label)` is false; returns their names.
pub async fn remove_orphans(home: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, Error> {
    let filter = format!("label={HOME_LABEL}={home}");
    let format = format!("{{{{.Names}}}} {{{{.Label \"{PROCESS_LABEL}\"}}}}");
    let listed = docker(&["ps", "--all", "--filter", &filter, "--format", &format]).await?;
    let mut removed = Vec::new();
    for line in listed.lines() {
        let (name, process) = line.split_once(' ').unwrap_or((line, ""));
        if !name.is_empty() && !keep(process) {
            remove(name).await;
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

/// Whether a local image with this reference exists, pulling it when it does not.
pub async fn ensure_image(image: &str) -> Result<(), Error> {
    if docker(&["image", "inspect", "--format", "{{.Id}}", image]).await.is_ok() {
        return Ok(());
    }
    docker(&["pull", "--quiet", image])
        .await
        .map(|_| ())
        .map_err(|e| Error::Docker(format!("image `{image}` is neither on this machine nor pullable: {e}")))
}
