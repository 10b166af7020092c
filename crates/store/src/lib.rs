//! Durable state (SQLite or Postgres through sqlx) and artifacts (object_store), the only crate that speaks SQL or touches stored files.
//!
//! [`Store`] holds runs, stages, training jobs, model versions and endpoints: by default in one
//! SQLite file opened in WAL mode, so a server and several CLI processes can share a home
//! directory; or in a Postgres database that several servers share. [`Artifacts`] stores `model.tar.gz` files with their sha256;
//! writes go to a temporary file that is renamed into place, so a crash never
//! leaves a half-written artifact visible.

mod approvals;
mod artifacts;
mod auth;
mod db;
mod deliveries;
mod endpoints;
mod events;
mod jobs;
mod models;
mod projects;
mod retention;
mod runs;
mod sagemaker;
mod status;

pub use approvals::{ApprovalRecord, ApprovalStatus, NewApproval};
pub use artifacts::{Artifacts, Location, StoredArtifact, download, s3_digest, sha256_bytes, sha256_file};
pub use auth::{AuditFilter, AuditRecord, Role, TokenRecord};
pub use db::DatabaseKind;
pub use deliveries::NotifyFailure;
pub use endpoints::{EndpointKind, EndpointRecord, VariantRecord};
pub use events::{EventKind, EventRecord};
pub use jobs::{TrainingJobRecord, Transition};
pub use models::{ModelVersionRecord, NewModelVersion};
pub use projects::ProjectRecord;
pub use runs::{LEASE_MS, NewRun, RunQuery, RunRecord, StageRecord, Trigger};
pub use sagemaker::{ResourceKind, ResourceRecord};
pub use status::{ModelApprovalStatus, RunStatus, SecondaryStatus, StageStatus, TrainingJobStatus, TriggerKind};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};

use crate::db::{Db, query_scalar};

/// What to do when the object store refused the credentials.
fn refused_hint(error: &object_store::Error) -> &'static str {
    match error {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            "; check the AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and that \
             they may use the bucket"
        }
        _ => "",
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened, migrated or queried.
    #[error("state database: {0}")]
    Database(#[from] sqlx::Error),
    /// An artifact could not be written or read.
    #[error("artifact store: {0}{hint}", hint = refused_hint(.0))]
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
    /// The database server could not be reached or refused the connection.
    #[error(
        "cannot connect to the state database {database}: {source}; check that it is up and the URL's user, password and database name"
    )]
    Unreachable {
        /// The database, without its password.
        database: String,
        /// The underlying error.
        source: sqlx::Error,
    },
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
    db: Db,
    /// A file of [`RESERVE_BYTES`] beside a SQLite database, deleted when the disk fills so that
    /// the failure can still be recorded. (A Postgres server's disk is its own.)
    reserve: Option<std::sync::Arc<std::path::PathBuf>>,
    /// Woken after a change that appended an event commits.
    appended: std::sync::Arc<tokio::sync::Notify>,
}

/// Room kept for the writes that record a failure on a full disk.
const RESERVE_BYTES: usize = 4 * 1024 * 1024;

impl Error {
    /// Whether the error is the disk (or the database's quota) being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            // SQLITE_FULL (the primary code in extended codes too), or Postgres's disk_full.
            Error::Database(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "53100" || c.parse::<i32>().is_ok_and(|c| c & 0xff == 13)),
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
        migrate_sqlite(&pool).await?;
        // Only its owner reads the state; SQLite gives its -wal and -shm files the same mode.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let reserve = path.with_extension("reserve");
        keep_reserve(&reserve);
        Ok(Store { db: Db::Sqlite(pool), reserve: Some(std::sync::Arc::new(reserve)), appended: Default::default() })
    }

    /// Connects to the Postgres database at `url` (`postgres://user:pass@host/db`) and applies
    /// migrations; servers on several machines may share it.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let shown = Database::Postgres(url.to_owned()).to_string();
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            Error::Invalid(format!("{shown} is not a Postgres URL ({e}): postgres://user:password@host:port/database"))
        })?;
        let needs_tls = !matches!(
            options.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Disable | sqlx::postgres::PgSslMode::Allow | sqlx::postgres::PgSslMode::Prefer
        );
        if needs_tls && !cfg!(feature = "aws") {
            return Err(Error::Invalid(format!(
                "{shown} asks for TLS (sslmode), which this sagebrush was built without; \
                 build it with `cargo build --release --features aws`"
            )));
        }
        // One connection first: the pool alone would wait out its timeout and say only that.
        let probe = sqlx::ConnectOptions::connect(&options)
            .await
            .map_err(|source| Error::Unreachable { database: shown, source })?;
        sqlx::Connection::close(probe).await?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        migrate_postgres(&pool).await?;
        Ok(Store { db: Db::Postgres(pool), reserve: None, appended: Default::default() })
    }

    /// Opens the database `at`.
    pub async fn open_at(at: &Database) -> Result<Store, Error> {
        match at {
            Database::Sqlite(path) => Store::open(path).await,
            Database::Postgres(url) => Store::connect(url).await,
        }
    }

    /// Which database this store is on.
    pub fn kind(&self) -> DatabaseKind {
        self.db.kind()
    }

    /// How many schema migrations the database has, and how many this build knows.
    pub async fn schema_version(&self) -> Result<(i64, usize), Error> {
        let applied: i64 = match &self.db {
            Db::Sqlite(_) => query_scalar("PRAGMA user_version").fetch_one(&self.db).await?,
            Db::Postgres(_) => {
                query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetch_one(&self.db).await?
            }
        };
        Ok((applied, MIGRATIONS.len()))
    }

    /// Deletes the reserve file to make room on a full disk; true if there was one to delete.
    pub fn release_reserve(&self) -> bool {
        self.reserve.as_ref().is_some_and(|reserve| std::fs::remove_file(reserve.as_path()).is_ok())
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

/// Where the state lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (the home's `state.db` by default).
    Sqlite(std::path::PathBuf),
    /// A Postgres server's database, `postgres://user:password@host:port/name`.
    Postgres(String),
}

impl Database {
    /// A `--database` value: a `postgres://` (or `postgresql://`) URL, or the path of a SQLite file.
    pub fn parse(value: &str) -> Database {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Database::Postgres(value.to_owned())
        } else {
            Database::Sqlite(value.strip_prefix("sqlite://").unwrap_or(value).into())
        }
    }
}

/// Shown without the password a URL may hold: this is what logs and `doctor` print.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                match rest.split_once('@') {
                    Some((user, host)) => {
                        let user = user.split_once(':').map_or(user, |(name, _)| name);
                        write!(f, "{scheme}://{user}:***@{host}")
                    }
                    None => write!(f, "{url}"),
                }
            }
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

/// Schema migrations of SQLite, applied in order; `PRAGMA user_version` records how many ran.
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
    include_str!("../migrations/0021_shared_state.sql"),
    include_str!("../migrations/0022_sagemaker.sql"),
];

/// Postgres's migrations, by the SQLite schema version each brings it to. Postgres came with
/// schema 20, so its first migration is that whole schema; later ones go in step with SQLite's.
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (20, include_str!("../migrations/postgres/0020_schema.sql")),
    (21, include_str!("../migrations/postgres/0021_shared_state.sql")),
    (22, include_str!("../migrations/postgres/0022_sagemaker.sql")),
];

async fn migrate_sqlite(pool: &SqlitePool) -> Result<(), Error> {
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

async fn migrate_postgres(pool: &PgPool) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    // Servers starting together on one database migrate it one at a time.
    sqlx::query("SELECT pg_advisory_xact_lock(7411)").execute(&mut *tx).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let applied: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetch_one(&mut *tx).await?;
    if applied > MIGRATIONS.len() as i64 {
        return Err(Error::Invalid(format!(
            "the database has schema {applied}, newer than this sagebrush knows ({}): upgrade sagebrush",
            MIGRATIONS.len()
        )));
    }
    for (version, sql) in POSTGRES_MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
