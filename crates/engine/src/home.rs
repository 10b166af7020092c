//! The home directory: where state, artifacts, logs and scratch files live.

use std::path::{Path, PathBuf};

use names::Name;

use crate::{Error, error::io_error};

/// A sagebrush home directory (`~/.sagebrush` unless `SAGEBRUSH_HOME` says otherwise).
///
/// Every path under it is built here, from a [`Name`], never from text a user sent.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
    /// Where new artifacts go, when not the home's `artifacts` folder.
    artifacts_at: Option<store::Location>,
    /// Where the state lives, when not the home's `state.db`.
    database_at: Option<store::Database>,
}

impl Home {
    /// A home at `root`; nothing is created until the engine opens it.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into(), artifacts_at: None, database_at: None }
    }

    /// The same home, writing new artifacts to `location` (e.g. `s3://bucket/prefix`).
    pub fn with_artifacts(self, location: store::Location) -> Home {
        Home { artifacts_at: Some(location), ..self }
    }

    /// The same home, keeping its state in `database` (e.g. a Postgres server several servers share).
    pub fn with_database(self, database: store::Database) -> Home {
        Home { database_at: Some(database), ..self }
    }

    /// Where new artifacts go.
    pub fn artifact_location(&self) -> store::Location {
        self.artifacts_at.clone().unwrap_or_else(|| store::Location::Local(self.artifacts()))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the home, readable by its owner alone: it holds logs, models and the state of every run.
    pub(crate) fn create(&self) -> Result<(), Error> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.root).map_err(io_error(&self.root))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700)).map_err(io_error(&self.root))
    }

    /// Where the state lives: the home's SQLite `state.db` unless another database was given.
    pub fn database(&self) -> store::Database {
        self.database_at.clone().unwrap_or_else(|| store::Database::Sqlite(self.root.join("state.db")))
    }

    /// The local artifact store (older artifacts stay readable here when new ones go elsewhere).
    pub fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// Where `s3://<bucket>/<key>` is, as `<bucket>/<key>`, for SageMaker requests to a server
    /// whose artifacts are local.
    pub fn s3_folder(&self) -> PathBuf {
        self.root.join("s3")
    }

    /// Bodies on their way into the S3 folder and multipart uploads not yet completed: beside it,
    /// on its filesystem, so an object is renamed into place whole.
    pub fn s3_uploads(&self) -> PathBuf {
        self.root.join("s3-uploads")
    }

    /// The projects SageMaker's CreateTrainingJob made, one folder per job.
    pub fn sagemaker_jobs(&self) -> PathBuf {
        self.root.join("sagemaker").join("training-jobs")
    }

    /// A stage's log file.
    pub fn stage_log(&self, project: &Name, number: i64, stage: &Name) -> PathBuf {
        self.run_logs(project, number).join(format!("{stage}.log"))
    }

    /// The folder of a run's stage logs.
    pub fn run_logs(&self, project: &Name, number: i64) -> PathBuf {
        self.root.join("logs").join(project).join(number.to_string())
    }

    /// A hosting instance's log file.
    pub fn endpoint_log(&self, endpoint: &Name) -> PathBuf {
        self.root.join("logs").join("endpoints").join(format!("{endpoint}.log"))
    }

    /// Scratch space of a run: its checkout (kept, so `retry` can reuse it).
    pub fn run_dir(&self, project: &Name, number: i64) -> PathBuf {
        self.root.join("work").join(format!("{project}-{number}"))
    }

    /// Scratch space of a run's training jobs (removed when the run ends).
    pub fn jobs_dir(&self, project: &Name, number: i64) -> PathBuf {
        self.run_dir(project, number).join("jobs")
    }

    /// Where an endpoint's unpacked models live.
    pub fn endpoint_dir(&self, endpoint: &Name) -> PathBuf {
        self.root.join("endpoints").join(endpoint)
    }

    /// Where an endpoint's data capture files go.
    pub fn capture_dir(&self, endpoint: &Name) -> PathBuf {
        self.root.join("capture").join(endpoint)
    }

    /// Where the server keeps its mirror of a git project's repository.
    pub fn project_mirror(&self, project: &Name) -> PathBuf {
        self.root.join("projects").join(format!("{project}.git"))
    }

    /// The file a running server writes its URL to, so the CLI can find it.
    pub fn server_file(&self) -> PathBuf {
        self.root.join("server.json")
    }
}
