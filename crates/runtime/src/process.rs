//! Child processes: an isolated `/opt/ml` through a private mount namespace, every child in a PID
//! namespace of its own (so nothing it starts outlives it), and stopping a whole process tree.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::Error;

/// A command that runs `program args...` with `opt_ml` mounted on `/opt/ml`, visible to it alone.
///
/// util-linux `unshare` makes a private mount namespace, and a shell bind-mounts the
/// job's directory there before `exec`, so the algorithm runs unmodified with the
/// absolute paths SageMaker gives it. Without root, a user namespace maps the caller
/// to root inside it.
pub fn isolated(opt_ml: &Path, program: &Path, args: &[&str]) -> Result<Command, Error> {
    ensure_mount_point()?;
    let mut command = guarded("unshare");
    if !nix::unistd::geteuid().is_root() {
        command.args(["--user", "--map-root-user"]);
    }
    command
        .args(PID_NAMESPACE)
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(r#"mount --bind "$SAGEBRUSH_OPT_ML" /opt/ml && exec "$0" "$@""#)
        .arg(program)
        .args(args)
        .env("SAGEBRUSH_OPT_ML", opt_ml);
    Ok(command)
}

/// `unshare` arguments for a PID namespace whose first process is killed with `unshare` itself:
/// when the first process of a PID namespace dies, the kernel kills every other one in it, so
/// whatever a job or a shell command starts (`sleep 1000 &`, a daemon) dies with it.
const PID_NAMESPACE: [&str; 3] = ["--pid", "--fork", "--kill-child"];

/// A command for `program` that is killed if sagebrush itself dies, even by SIGKILL.
///
/// util-linux `setpriv --pdeathsig` sets the parent-death signal and execs, so a
/// `kill -9` of the server cannot leave a training job or model server running.
/// The server's own secrets are not passed on (see [`SECRET_VARIABLES`]).
pub fn guarded(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_secret) {
            command.env_remove(name);
        }
    }
    command
}

/// `program args...` in a PID namespace of its own, killed with everything it started when
/// sagebrush stops it, drops it or dies.
pub fn contained(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = guarded("unshare");
    if !nix::unistd::geteuid().is_root() {
        // A PID namespace needs a user namespace without root; the user stays who it is inside.
        command.arg("--map-current-user");
    }
    command.args(PID_NAMESPACE).arg("--").arg(program);
    command
}

/// Environment variables of the server that its children never see: credentials and tokens.
pub const SECRET_VARIABLES: &str = "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, and any      SAGEBRUSH_* variable whose name holds TOKEN, SECRET, PASSWORD or KEY";

fn is_secret(name: &str) -> bool {
    matches!(name, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN")
        || (name.starts_with("SAGEBRUSH_") && ["TOKEN", "SECRET", "PASSWORD", "KEY"].iter().any(|w| name.contains(w)))
}

fn ensure_mount_point() -> Result<(), Error> {
    let path = Path::new("/opt/ml");
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| {
        Error::Isolation(format!(
            "/opt/ml does not exist and cannot be created ({e}); create it once with `sudo mkdir -p /opt/ml`"
        ))
    })
}

/// Starts a command in its own process group, so that stopping it stops its children too.
pub fn spawn(mut command: Command, program: &str) -> Result<Child, Error> {
    command.process_group(0).kill_on_drop(true);
    command.spawn().map_err(|source| Error::Spawn { program: program.to_owned(), source })
}

/// Sends SIGTERM to the child's process group, then SIGKILL after `grace`, and reaps it.
pub async fn stop(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else { return };
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// SIGKILL to a process group without waiting; for `Drop`, where nothing can be awaited.
pub fn kill_group_now(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_and_tokens_are_secret() {
        for secret in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "SAGEBRUSH_TOKEN", "SAGEBRUSH_WEBHOOK_SECRET"] {
            assert!(super::is_secret(secret), "{secret}");
        }
        for plain in ["PATH", "HOME", "SAGEBRUSH_HOME", "AWS_REGION", "MY_TOKEN"] {
            assert!(!super::is_secret(plain), "{plain}");
        }
    }
}
