//! The SageMaker container contract: laying out /opt/ml, running training jobs and starting hosting instances.
//!
//! - [`opt_ml`] writes a job's `/opt/ml` tree exactly as SageMaker does.
//! - [`training`] runs a job's `train` as a child process (the built-in algorithm
//!   through `sagebrush algorithm train`, or a folder's `train` executable in its
//!   [`sandbox`]), with logs, metric regexes, a max runtime and stop.
//! - [`hosting`] starts a folder's `serve` executable in its sandbox, listening on port 8080
//!   in a network namespace of its own, and waits for `/ping`.
//! - [`sandbox`] is what a container would give a job, made from namespaces: the job's own
//!   `/opt/ml`, the program at `/opt/program`, private `/tmp`, `/run` and `/var/log`, the
//!   rest of the machine read-only.
//! - [`docker`] runs the same contract in containers: `<image> train`, `<image> serve`.
//! - [`archive`] packs and unpacks `model.tar.gz` without path traversal.

pub mod archive;
pub mod docker;
pub mod hosting;
pub mod instance;
pub mod multi_model;
pub mod opt_ml;
pub mod process;
pub mod sandbox;
pub mod sbom;
pub mod training;

use std::path::{Path, PathBuf};

/// Everything that can go wrong while running the contract.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A child process could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A channel's data path does not exist.
    #[error("channel `{channel}`: {path} does not exist")]
    MissingChannel {
        /// Channel name.
        channel: String,
        /// The path that was given.
        path: String,
    },
    /// An archive holds something that must not be unpacked.
    #[error("refusing to unpack `{entry}`: {why}")]
    UnsafeArchive {
        /// The entry's path in the archive.
        entry: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// A serving process did not become healthy.
    #[error("{0}")]
    NotHealthy(String),
    /// A multi-model container did not load a model.
    #[error("the model server did not load {model}: {why}")]
    ModelNotLoaded {
        /// The model's name.
        model: String,
        /// What went wrong.
        why: String,
    },
    /// An instance type not in sagebrush's table.
    #[error("{0}")]
    UnknownInstanceType(String),
    /// The Docker Engine refused or failed a request.
    #[error("{0}")]
    Docker(String),
    /// The process runtime's sandbox could not be set up.
    #[error("process runtime: {0}")]
    Isolation(String),
}

/// What trains and serves a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// A built-in algorithm (`decision-tree`, `random-forest`), run by the sagebrush binary itself.
    Builtin(String),
    /// A folder with `train` and `serve` executables, and where a container would have it.
    Process(sandbox::Program),
    /// A container image run as `<image> train` and `<image> serve`.
    Image(String),
}

impl Algorithm {
    /// The reference stored in the registry: `builtin:decision-tree`, `image:<image>`,
    /// `process:/abs/dir` (at `/opt/program`) or `process[/workdir]:/abs/dir`.
    pub fn reference(&self) -> String {
        match self {
            Algorithm::Builtin(name) => format!("builtin:{name}"),
            Algorithm::Process(program) if program.workdir == Path::new(sandbox::DEFAULT_WORKDIR) => {
                format!("process:{}", program.dir.display())
            }
            Algorithm::Process(program) => format!("process[{}]:{}", program.workdir.display(), program.dir.display()),
            Algorithm::Image(image) => format!("image:{image}"),
        }
    }

    /// Parses what [`Algorithm::reference`] wrote.
    pub fn from_reference(reference: &str) -> Option<Algorithm> {
        if let Some(name) = reference.strip_prefix("builtin:") {
            Some(Algorithm::Builtin(name.to_owned()))
        } else if let Some(image) = reference.strip_prefix("image:") {
            Some(Algorithm::Image(image.to_owned()))
        } else if let Some(dir) = reference.strip_prefix("process:") {
            let program =
                sandbox::Program { dir: PathBuf::from(dir), workdir: PathBuf::from(sandbox::DEFAULT_WORKDIR) };
            Some(Algorithm::Process(program))
        } else {
            // A workdir has no `]` (`sandbox::check_workdir`), so the first `]:` ends it.
            let (workdir, dir) = reference.strip_prefix("process[")?.split_once("]:")?;
            sandbox::check_workdir(Path::new(workdir)).ok()?;
            Some(Algorithm::Process(sandbox::Program { dir: PathBuf::from(dir), workdir: PathBuf::from(workdir) }))
        }
    }
}

/// A suffix no other name made by this process has, and unlikely in another's: pid, a counter and the clock.
pub fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{count}-{nanos:x}", std::process::id())
}

/// The last 20 lines of a log file, for an error that says why a server did not start.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_algorithm_keeps_its_workdir_in_its_reference() {
        for workdir in [sandbox::DEFAULT_WORKDIR, "/opt/ml/code"] {
            let program = sandbox::Program { dir: "/h/work/p-1/alg]:x".into(), workdir: workdir.into() };
            let algorithm = Algorithm::Process(program);
            assert_eq!(Algorithm::from_reference(&algorithm.reference()), Some(algorithm));
        }
        assert_eq!(
            Algorithm::Process(sandbox::Program { dir: "/a".into(), workdir: "/opt/program".into() }).reference(),
            "process:/a"
        );
        assert_eq!(Algorithm::from_reference("process[/tmp]:/a"), None);
    }
}
