//! Durable state (SQLite through sqlx) and artifacts (object_store), the only crate that speaks SQL or touches stored files.
//!
//! [`Store`] holds runs, stages, training jobs, model versions and endpoints in one
//! SQLite file opened in WAL mode, so a server and several CLI processes can share a
//! home directory. [`Artifacts`] stores `model.tar.gz` files with their sha256;
//! writes go to a temporary file that is renamed into place, so a crash never
//! leaves a half-written artifact visible.

mod approvals;
mod artifacts;
mod auth;
mod deliveries;
mod endpoints;
mod events;
mod jobs;
mod models;
mod projects;
mod retention;
mod runs;
mod status;

pub use approvals::{ApprovalRecord, ApprovalStatus, NewApproval};
pub use artifacts::{Artifacts, Location, StoredArtifact, download, sha256_file};
pub use auth::{AuditFilter, AuditRecord, Role, TokenRecord};
pub use deliveries::NotifyFailure;
pub use endpoints::{EndpointKind, EndpointRecord, VariantRecord};
pub use events::{EventKind, EventRecord};
pub use jobs::TrainingJobRecord;
pub use models::{ModelVersionRecord, NewModelVersion};
pub use projects::ProjectRecord;
pub use runs::{NewRun, RunQuery, RunRecord, StageRecord, Trigger};
pub use status::{ModelApprovalStatus, RunStatus, SecondaryStatus, StageStatus, TrainingJobStatus, TriggerKind};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened, migrated or queried.
    #[error("state database: {0}")]
    Database(#[from] sqlx::Error),
    /// An artifact could not be written or read.
    #[error("artifact store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON column held something unexpected.
    #[error("state database holds invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// What was asked for clashes with what is recorded.
    #[error("{0}")]
    Conflict(String),
    /// A setting of the store cannot be used (an artifact location, say).
    #[error("{0}")]
    Invalid(String),
    /// Stored bytes no longer hash to their recorded sha256.
    #[error("{0}")]
    Integrity(String),
}

/// The state database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// A file of [`RESERVE_BYTES`] beside the database, deleted when the disk fills so that the
    /// failure can still be recorded.
    reserve: std::sync::Arc<std::path::PathBuf>,
    /// Woken after a change that appended an event commits.
    appended: std::sync::Arc<tokio::sync::Notify>,
}

/// Room kept for the writes that record a failure on a full disk.
const RESERVE_BYTES: usize = 4 * 1024 * 1024;

impl Error {
    /// Whether the error is the disk (or the database's quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            // SQLITE_FULL, and the primary code in extended codes.
            Error::Database(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c.parse::<i32>().is_ok_and(|c| c & 0xff == 13)),
            Error::Io { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Store, Error> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            // WAL + NORMAL is durable against process crashes, which is what "nothing is lost on a crash" needs.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Several processes (server, CLI) share one file; wait on locks instead of failing.
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A COMMIT that fails on a full disk leaves sqlx counting a transaction SQLite has
            // already ended, and every later BEGIN on that connection fails: close such a one.
            .after_release(|conn, _| Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) }))
            .connect_with(options)
            .await?;
        use_wal(&pool).await?;
        migrate(&pool).await?;
        // Only its owner reads the state; SQLite gives its -wal and -shm files the same mode.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let reserve = path.with_extension("reserve");
        keep_reserve(&reserve);
        Ok(Store { pool, reserve: std::sync::Arc::new(reserve), appended: Default::default() })
    }

    /// How many schema migrations the database has, and how many this build knows.
    pub async fn schema_version(&self) -> Result<(i64, usize), Error> {
        let applied: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&self.pool).await?;
        Ok((applied, MIGRATIONS.len()))
    }

    /// Deletes the reserve file to make room on a full disk; true if there was one to delete.
    pub fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.reserve.as_path()).is_ok()
    }
}

/// Writes the reserve file unless it is there; on a disk too full for it, goes on without.
fn keep_reserve(path: &Path) {
    if path.metadata().is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return;
    }
    // Real zeros, not a sparse file: the blocks must be allocated to be freed later.
    if std::fs::write(path, vec![0u8; RESERVE_BYTES]).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// Switches the file to WAL once; WAL is a property of the file, so later opens find it set.
///
/// Not a connect option: setting the journal mode takes a lock SQLite's busy timeout does not wait
/// for, so every process opening a busy database would fail with "database is locked".
async fn use_wal(pool: &SqlitePool) -> Result<(), Error> {
    let mut attempts = 0;
    loop {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match sqlx::query("PRAGMA journal_mode = WAL").execute(pool).await {
            Ok(_) => return Ok(()),
            Err(e) if attempts < 100 && is_busy(&e) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_busy(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "5" || code == "6")
}

/// Milliseconds since the Unix epoch, the timestamp format of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_endpoint_instances.sql"),
    include_str!("../migrations/0003_endpoint_variants.sql"),
    include_str!("../migrations/0004_endpoint_expiry.sql"),
    include_str!("../migrations/0005_multi_model.sql"),
    include_str!("../migrations/0006_inference_pipelines.sql"),
    include_str!("../migrations/0007_data_capture.sql"),
    include_str!("../migrations/0008_multi_model_image.sql"),
    include_str!("../migrations/0009_projects.sql"),
    include_str!("../migrations/0010_queue.sql"),
    include_str!("../migrations/0011_secrets.sql"),
    include_str!("../migrations/0012_auth.sql"),
    include_str!("../migrations/0013_events.sql"),
    include_str!("../migrations/0014_git_projects.sql"),
    include_str!("../migrations/0015_queue_heads.sql"),
    include_str!("../migrations/0016_triggers.sql"),
    include_str!("../migrations/0017_approvals.sql"),
    include_str!("../migrations/0018_notifications.sql"),
    include_str!("../migrations/0019_retention.sql"),
    include_str!("../migrations/0020_training_jobs_by_run.sql"),
];

async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    // IMMEDIATE takes the write lock up front: a deferred read-then-write fails at once (SQLITE_BUSY) when another process wrote in between.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let applied: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {}", index + 1))).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
