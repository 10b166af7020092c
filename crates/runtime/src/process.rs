//! Child processes: the process runtime's sandbox (namespaces of its own for each job and model
//! server, set up inside by [`crate::sandbox`]), every child in a PID namespace of its own (so
//! nothing it starts outlives it), and stopping a whole process tree.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::sandbox::{self, Spec};
use crate::{Error, io_error};

/// How long a sandbox may take to set itself up.
const SETUP_DEADLINE: Duration = Duration::from_secs(30);

/// What a sandbox needs of this machine, for the error that says it is missing.
const NAMESPACES_NEEDED: &str = "each process-runtime job and model server runs in mount, PID and network namespaces \
of its own (util-linux `unshare`): run sagebrush as root with CAP_SYS_ADMIN, or as a user allowed unprivileged user \
namespaces (`sysctl kernel.unprivileged_userns_clone=1`, `user.max_user_namespaces` above 0); in a container, give \
it CAP_SYS_ADMIN; or run the algorithm as an image (`[algorithm] image = ...`) in Docker";

/// Where a sandbox's output goes.
pub enum Output<'a> {
    /// stdout and stderr to pipes of the child, read by the caller (a training job's log lines).
    Piped,
    /// Both appended to a file (a model server's log).
    File(&'a Path),
}

/// A process-runtime job or model server: `sagebrush sandbox` as the first process of its namespaces.
#[derive(Debug)]
pub struct Sandboxed {
    pub child: Child,
    /// This side of the sandbox's control socket: connections to a server inside ([`crate::hosting::Dialer`]).
    pub control: tokio::net::UnixStream,
}

/// Starts `spec` in a sandbox of its own and waits until it says it is set up, or why it is not.
///
/// `exe` is the sagebrush binary, which sets the sandbox up from inside; `env` is added to the
/// job's environment.
pub async fn sandboxed(exe: &Path, spec: &Spec, env: &[(&str, &str)], output: Output<'_>) -> Result<Sandboxed, Error> {
    // The sandbox assembles its root on /opt/ml; the program's workdir is made in that root.
    ensure_mount_point(Path::new("/opt/ml"))?;
    // The sandbox finds what it hides by absolute path; a folder that does not exist hides nothing.
    let spec =
        Spec { hidden: spec.hidden.iter().filter_map(|h| std::fs::canonicalize(h).ok()).collect(), ..spec.clone() };
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(io_error(Path::new("socketpair")))?;
    let mut command = guarded("unshare");
    if !nix::unistd::geteuid().is_root() {
        command.args(["--user", "--map-root-user"]);
    }
    // A network of its own (the loopback only: a training job has no network, as SageMaker's with
    // network isolation; a server is reached through the control socket), and its own IPC and host name.
    command.args(PID_NAMESPACE).args([
        "--mount",
        "--propagation",
        "private",
        "--mount-proc",
        "--net",
        "--ipc",
        "--uts",
    ]);
    command
        .arg("--")
        .arg(exe)
        .args(spec.to_args())
        .envs(env.iter().copied())
        // A container for one model is told no port: it listens on 8080, as SageMaker expects.
        .env_remove("SAGEMAKER_BIND_TO_PORT")
        .stdin(Stdio::from(OwnedFd::from(theirs)));
    match output {
        Output::Piped => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
        Output::File(log) => {
            let file =
                std::os::unix::fs::OpenOptionsExt::mode(std::fs::OpenOptions::new().create(true).append(true), 0o600)
                    .open(log)
                    .map_err(io_error(log))?;
            let copy = file.try_clone().map_err(io_error(log))?;
            command.stdout(file).stderr(copy)
        }
    };
    // Dropped with `command` once spawned, so only the sandbox holds its end and its exit is seen.
    let mut child = spawn(command, "unshare")?;
    ours.set_nonblocking(true).map_err(io_error(Path::new("socketpair")))?;
    let mut control = tokio::net::UnixStream::from_std(ours).map_err(io_error(Path::new("socketpair")))?;
    let mut first = [0u8];
    let said = tokio::time::timeout(SETUP_DEADLINE, control.read(&mut first)).await;
    let why = match said {
        Ok(Ok(1)) if first[0] == sandbox::READY => return Ok(Sandboxed { child, control }),
        Ok(Ok(1)) if first[0] == sandbox::FAILED => {
            let mut why = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(1), control.read_to_string(&mut why)).await;
            why
        }
        Err(_) => format!("the sandbox was not set up within {} s", SETUP_DEADLINE.as_secs()),
        // It exited before it could say anything: `unshare` could not make the namespaces.
        Ok(_) => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let status = match status {
                Ok(Ok(status)) => status.to_string(),
                _ => "did not exit".to_owned(),
            };
            let said = match output {
                Output::Piped => match child.stderr.take() {
                    Some(mut stderr) => {
                        let mut text = String::new();
                        let _ = tokio::time::timeout(Duration::from_secs(1), stderr.read_to_string(&mut text)).await;
                        text
                    }
                    None => String::new(),
                },
                Output::File(log) => crate::log_tail(log),
            };
            format!(
                "the sandbox's namespaces could not be made (`unshare` {status}: {}); {NAMESPACES_NEEDED}",
                said.trim()
            )
        }
    };
    stop(&mut child, Duration::from_secs(1)).await;
    Err(Error::Isolation(why))
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
pub const SECRET_VARIABLES: &str = "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, and any      SAGEBRUSH_* variable whose name holds TOKEN, SECRET, PASSWORD, KEY or DATABASE (a URL with its password)";

fn is_secret(name: &str) -> bool {
    matches!(name, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN")
        || (name.starts_with("SAGEBRUSH_")
            && ["TOKEN", "SECRET", "PASSWORD", "KEY", "DATABASE"].iter().any(|w| name.contains(w)))
}

/// Whether a model server's sandbox can be made here: one around `true`, with its own network
/// namespace, its root assembled and its loopback up, in folders under `scratch` (removed after).
pub async fn check_sandbox(exe: &Path, scratch: &Path) -> Result<(), Error> {
    let spec = Spec {
        opt_ml: scratch.join("opt_ml"),
        program: sandbox::Program { dir: scratch.join("program"), workdir: sandbox::DEFAULT_WORKDIR.into() },
        serve_port: Some(crate::hosting::SERVE_PORT),
        hidden: Vec::new(),
        command: vec!["true".into()],
    };
    for dir in [&spec.opt_ml, &spec.program.dir] {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let started = sandboxed(exe, &spec, &[], Output::File(&scratch.join("sandbox.log"))).await;
    let ended = match started {
        Ok(mut sandboxed) => {
            let _ = sandboxed.child.wait().await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(scratch);
    ended
}

/// Makes `path` once (a directory the sandbox mounts on), or says how to.
fn ensure_mount_point(path: &Path) -> Result<(), Error> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| {
        Error::Isolation(format!(
            "{} does not exist and cannot be created ({e}); create it once with `sudo mkdir -p {}`",
            path.display(),
            path.display()
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
        for secret in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "SAGEBRUSH_TOKEN",
            "SAGEBRUSH_WEBHOOK_SECRET",
            "SAGEBRUSH_DATABASE",
        ] {
            assert!(super::is_secret(secret), "{secret}");
        }
        for plain in ["PATH", "HOME", "SAGEBRUSH_HOME", "AWS_REGION", "MY_TOKEN"] {
            assert!(!super::is_secret(plain), "{plain}");
        }
    }
}
