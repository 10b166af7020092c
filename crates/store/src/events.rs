//! The append-only log of changes: each is written in the transaction of the change it tells of,
//! so a reader never sees a change without its event, nor an event without its change.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow};

use crate::db::{DatabaseKind, Tx, query, query_as, query_scalar};
use crate::{Error, Store, now_ms};

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunQueued,
    RunStarted,
    /// A run waits for a person (an approval).
    RunWaiting,
    RunFinished,
    StageStarted,
    StageFinished,
    ModelRegistered,
    EndpointUpdated,
    EndpointDeleted,
}

/// One change, with what a follower needs to know of it (`project`, `number`, `stage`, `status`,
/// `reason`, `endpoint`, `model_group`, `version`, as the kind has them).
#[derive(Clone, Debug, FromRow, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventRecord {
    /// Increasing: pass the last one seen as `after` to go on from there.
    pub id: i64,
    /// When (ms).
    pub at: i64,
    pub kind: EventKind,
    /// The project it belongs to, when it belongs to one.
    pub project: Option<String>,
    #[schema(value_type = Object)]
    pub data: Json<serde_json::Value>,
}

/// Appends an event of a run, its fields read from the run's row (and stage `position`, if any) in the same transaction.
pub(crate) async fn run_event(tx: &mut Tx, kind: EventKind, run_id: i64, position: Option<i64>) -> Result<(), Error> {
    let object = match tx.kind() {
        DatabaseKind::Sqlite => "json_object",
        DatabaseKind::Postgres => "jsonb_build_object",
    };
    let sql = format!(
        "INSERT INTO events (at, kind, project, data)
         SELECT $1, $2, runs.project, {object}(
             'project', runs.project, 'number', runs.number, 'status', COALESCE(stages.status, runs.status),
             'reason', COALESCE(stages.reason, runs.reason), 'stage', stages.name, 'trigger', runs.trigger)
         FROM runs LEFT JOIN stages ON stages.run_id = runs.id AND stages.position = $4
         WHERE runs.id = $3"
    );
    in_commit_order(tx).await?;
    query(AssertSqlSafe(sql)).bind(now_ms()).bind(kind).bind(run_id).bind(position).execute(tx).await?;
    Ok(())
}

/// Appends an event with the given fields.
pub(crate) async fn event(
    tx: &mut Tx,
    kind: EventKind,
    project: Option<&str>,
    data: serde_json::Value,
) -> Result<(), Error> {
    in_commit_order(tx).await?;
    query("INSERT INTO events (at, kind, project, data) VALUES ($1, $2, $3, $4)")
        .bind(now_ms())
        .bind(kind)
        .bind(project)
        .bind(data)
        .execute(tx)
        .await?;
    Ok(())
}

/// Makes events take their ids in the order their transactions commit, so a follower reading
/// `id > last` never passes over one that commits later with a smaller id. SQLite has one writer
/// at a time already; on Postgres the lock is held until the transaction ends.
async fn in_commit_order(tx: &mut Tx) -> Result<(), Error> {
    if tx.kind() == DatabaseKind::Postgres {
        query("SELECT pg_advisory_xact_lock(7412)").execute(tx).await?;
    }
    Ok(())
}

impl Store {
    /// Events after `after` (oldest first), of one project when given, at most `limit`.
    pub async fn events(&self, after: i64, project: Option<&str>, limit: i64) -> Result<Vec<EventRecord>, Error> {
        query_as(
            "SELECT id, at, kind, project, data FROM events
             WHERE id > $1 AND ($2 IS NULL OR project = $2) ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(project)
        .bind(limit)
        .fetch_all(&self.db)
        .await
    }

    /// An endpoint's changes (what it serves, its deletion), oldest first.
    pub async fn endpoint_events(&self, endpoint: &str) -> Result<Vec<EventRecord>, Error> {
        query_as(
            "SELECT id, at, kind, project, data FROM events
             WHERE kind IN ('endpoint_updated', 'endpoint_deleted') AND data ->> 'endpoint' = $1
             ORDER BY id",
        )
        .bind(endpoint)
        .fetch_all(&self.db)
        .await
    }

    /// The newest event's id (0 with none): where a follower that wants only what comes next starts.
    pub async fn last_event(&self) -> Result<i64, Error> {
        query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&self.db).await
    }

    /// Notified after a change of this process that appended an event commits (other processes'
    /// events are found only by reading the table again).
    pub fn appended_notify(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.appended.clone()
    }

    pub(crate) fn appended(&self) {
        self.appended.notify_waiters();
    }
}
crate::db::text_enum!(EventKind);
