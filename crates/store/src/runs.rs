//! Runs and their stages: numbering, status transitions, cancellation requests.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow};

use crate::db::{Tx, id_list, query, query_as, query_scalar};
use crate::events::{EventKind, run_event};
use crate::{Error, RunStatus, StageStatus, Store, TriggerKind, now_ms};

/// One execution of a pipeline.
#[derive(Clone, Debug, FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// Database id, stable across restarts.
    pub id: i64,
    /// The pipeline name the run belongs to.
    pub project: String,
    /// 1, 2, 3 per project: the build number.
    pub number: i64,
    /// Where the project's `sagebrush.toml` was read from.
    pub project_path: String,
    pub status: RunStatus,
    /// Why the run failed or was cancelled.
    pub reason: Option<String>,
    /// Resolved parameters, by name; a secret's is `***`.
    #[schema(value_type = Object)]
    pub parameters: Json<serde_json::Map<String, serde_json::Value>>,
    /// Where each secret parameter is read when the run starts (`env:NAME`, `file:PATH`): kept
    /// for the process that runs it, never shown.
    #[serde(skip)]
    #[schema(ignore)]
    pub secrets: Json<serde_json::Map<String, serde_json::Value>>,
    /// What started it.
    pub trigger: TriggerKind,
    /// Which delivery (`github 72d3162e-...`) or schedule started it.
    pub trigger_detail: Option<String>,
    /// Who: the token's name (or `local`) for a person, the pusher for a push.
    pub triggered_by: Option<String>,
    /// The commit checked out, when the project is a git repository.
    pub commit_sha: Option<String>,
    /// `pid:start-time` of the process executing the run.
    pub owner: Option<String>,
    /// Set by `cancel`; the executing process polls it.
    pub cancel_requested: bool,
    /// For a retry, the run number it retries.
    pub retry_of: Option<i64>,
    /// For a retry from a stage, that stage: the ones before it reuse the retried run's outputs.
    pub retry_from: Option<String>,
    /// The commit the run was asked to build, when one was named or known at submission.
    pub requested_commit: Option<String>,
    /// When the run was created (queued) (ms).
    pub created_at: i64,
    /// When it left the queue and started (ms).
    pub started_at: Option<i64>,
    /// When the run ended (ms).
    pub finished_at: Option<i64>,
    /// Until when the server running it holds it (ms): it renews this while it runs, and
    /// another server that finds it past fails the run.
    pub lease_until: Option<i64>,
}

/// How long a running run stays its server's without a renewal. Servers renew every third of it.
pub const LEASE_MS: i64 = 30_000;

/// One step of a run.
#[derive(Clone, Debug, FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageRecord {
    /// The run it belongs to.
    pub run_id: i64,
    /// Order in the pipeline, from 0.
    pub position: i64,
    /// Stage name, unique in the pipeline.
    pub name: String,
    /// Stage kind (`train`, `deploy`, ...).
    pub kind: String,
    pub status: StageStatus,
    /// Why the stage failed.
    pub reason: Option<String>,
    /// How many attempts were made.
    pub attempts: i64,
    /// What the stage produced (a stage kind's output, or what a failed stage had found).
    #[schema(value_type = Object)]
    pub outputs: Json<serde_json::Value>,
    /// When the stage started (ms).
    pub started_at: Option<i64>,
    /// When the stage ended (ms).
    pub finished_at: Option<i64>,
}

/// Which runs a page lists.
#[derive(Clone, Debug, Default)]
pub struct RunQuery<'a> {
    pub project: Option<&'a str>,
    pub status: Option<RunStatus>,
    pub trigger: Option<TriggerKind>,
    /// Only runs older than this id (the cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// What started a run, as recorded with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub detail: Option<String>,
    pub by: Option<String>,
}

impl Trigger {
    /// A person's run; `by` is their token's name, or `local`.
    pub fn manual(by: &str) -> Trigger {
        Trigger { kind: TriggerKind::Manual, detail: None, by: Some(by.to_owned()) }
    }
}

/// What is needed to create a run.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    /// The pipeline name.
    pub project: &'a str,
    /// Where the pipeline file lives.
    pub project_path: &'a str,
    /// Resolved parameters, JSON, a secret's as `***`.
    pub parameters: &'a str,
    /// Where each secret is read, JSON.
    pub secrets: &'a str,
    /// What started it.
    pub trigger: &'a Trigger,
    /// `Queued` (a server's scheduler starts it) or `Running` (the caller executes it now).
    pub status: RunStatus,
    /// Owner process identity, for a run created running.
    pub owner: Option<&'a str>,
    /// The run this one retries, and the stage it retries from.
    pub retry_of: Option<i64>,
    pub retry_from: Option<&'a str>,
    /// The commit it was asked for.
    pub requested_commit: Option<&'a str>,
    /// `(name, kind)` of each stage in order.
    pub stages: &'a [(String, String)],
}

pub(crate) const RUN_COLUMNS: &str = "id, project, number, project_path, status, reason, parameters, secrets, trigger, \
     trigger_detail, triggered_by, commit_sha, owner, cancel_requested, retry_of, retry_from, requested_commit, created_at, started_at, finished_at, lease_until";

impl Store {
    /// Creates a run with the next number for its project, and its pending stages, in one transaction.
    pub async fn create_run(&self, new: NewRun<'_>) -> Result<RunRecord, Error> {
        let parameters: serde_json::Value = serde_json::from_str(new.parameters)?;
        let secrets: serde_json::Value = serde_json::from_str(new.secrets)?;
        let mut tx = self.db.begin().await?;
        let now = now_ms();
        // The counter row is locked until commit, so concurrent creators of one project's runs
        // (on any server) take turns for the next number.
        let number: i64 = query_scalar(
            "INSERT INTO run_numbers (project, last) VALUES ($1, 1)
             ON CONFLICT (project) DO UPDATE SET last = run_numbers.last + 1 RETURNING last",
        )
        .bind(new.project)
        .fetch_one(&mut tx)
        .await?;
        let run: RunRecord = query_as(AssertSqlSafe(format!(
            "INSERT INTO runs (project, number, project_path, status, parameters, trigger, owner, retry_of, retry_from,
                               requested_commit, created_at, started_at, secrets, trigger_detail, triggered_by, lease_until)
             VALUES ($1, $15, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $16)
             RETURNING {RUN_COLUMNS}"
        )))
        .bind(new.project)
        .bind(new.project_path)
        .bind(new.status)
        .bind(parameters)
        .bind(new.trigger.kind)
        .bind(new.owner)
        .bind(new.retry_of)
        .bind(new.retry_from)
        .bind(new.requested_commit)
        .bind(now)
        .bind((new.status == RunStatus::Running).then_some(now))
        .bind(secrets)
        .bind(&new.trigger.detail)
        .bind(&new.trigger.by)
        .bind(number)
        .bind((new.status == RunStatus::Running).then(|| now + LEASE_MS))
        .fetch_one(&mut tx)
        .await?;
        let id = run.id;
        if !new.stages.is_empty() {
            // One statement for all the stages: on Postgres each statement is a round trip.
            let rows: Vec<String> = (0..new.stages.len())
                .map(|i| format!("($1, {}, ${}, ${}, 'pending')", i, 2 * i + 2, 2 * i + 3))
                .collect();
            let mut insert = query(AssertSqlSafe(format!(
                "INSERT INTO stages (run_id, position, name, kind, status) VALUES {}",
                rows.join(", ")
            )))
            .bind(id);
            for (name, kind) in new.stages {
                insert = insert.bind(name).bind(kind);
            }
            insert.execute(&mut tx).await?;
        }
        let kind = if new.status == RunStatus::Queued { EventKind::RunQueued } else { EventKind::RunStarted };
        run_event(&mut tx, kind, id, None).await?;
        tx.commit().await?;
        self.appended();
        Ok(run)
    }

    /// A run by database id.
    pub async fn run_by_id(&self, id: i64) -> Result<RunRecord, Error> {
        query_as(AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run id {id}")))
    }

    /// A run by project and number; `None` as the number means the latest.
    pub async fn run(&self, project: &str, number: Option<i64>) -> Result<RunRecord, Error> {
        let found: Option<RunRecord> = match number {
            Some(n) => {
                query_as(AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE project = $1 AND number = $2")))
                    .bind(project)
                    .bind(n)
                    .fetch_optional(&self.db)
                    .await?
            }
            None => {
                query_as(AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE project = $1 ORDER BY number DESC LIMIT 1"
                )))
                .bind(project)
                .fetch_optional(&self.db)
                .await?
            }
        };
        found.ok_or_else(|| match number {
            Some(n) => Error::NotFound(format!("run {project} #{n}")),
            None => Error::NotFound(format!("a run of project `{project}`")),
        })
    }

    /// Recent runs, newest first, optionally of one project.
    pub async fn runs(&self, project: Option<&str>, limit: i64) -> Result<Vec<RunRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ($1 IS NULL OR project = $1) ORDER BY id DESC LIMIT $2"
        )))
        .bind(project)
        .bind(limit)
        .fetch_all(&self.db)
        .await
    }

    /// The oldest queued run of each project, oldest first: the only ones that may start next
    /// (a project's runs start in order), read from an index whatever the backlog.
    pub async fn queue_heads(&self) -> Result<Vec<RunRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN
                 (SELECT MIN(id) FROM runs WHERE status = 'queued' GROUP BY project)
             ORDER BY id"
        )))
        .fetch_all(&self.db)
        .await
    }

    /// A queued run of `project` for the same commit and parameters, if there is one.
    pub async fn queued_duplicate(
        &self,
        project: &str,
        commit: &str,
        parameters: &str,
    ) -> Result<Option<RunRecord>, Error> {
        let parameters: serde_json::Value = serde_json::from_str(parameters)?;
        query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'queued' AND project = $1 AND requested_commit = $2
             AND parameters = $3 ORDER BY id LIMIT 1"
        )))
        .bind(project)
        .bind(commit)
        .bind(parameters)
        .fetch_optional(&self.db)
        .await
    }

    /// Takes a queued run for the process `owner`: true if it was still queued (no one else took it).
    pub async fn claim_run(&self, run_id: i64, owner: &str) -> Result<bool, Error> {
        let mut tx = self.db.begin().await?;
        let done = query(
            "UPDATE runs SET status = 'running', owner = $2, started_at = $3, lease_until = $4
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(run_id)
        .bind(owner)
        .bind(now_ms())
        .bind(now_ms() + LEASE_MS)
        .execute(&mut tx)
        .await?;
        let claimed = done == 1;
        if claimed {
            run_event(&mut tx, EventKind::RunStarted, run_id, None).await?;
        }
        tx.commit().await?;
        self.appended();
        Ok(claimed)
    }

    /// Renews the lease of every running run `owner` holds; how many it holds.
    pub async fn renew_leases(&self, owner: &str) -> Result<u64, Error> {
        query("UPDATE runs SET lease_until = $2 WHERE owner = $1 AND status = 'running'")
            .bind(owner)
            .bind(now_ms() + LEASE_MS)
            .execute(&self.db)
            .await
    }

    /// Running runs whose lease ran out before `now`: the server that held them stopped renewing.
    pub async fn lapsed_runs(&self, now: i64) -> Result<Vec<RunRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND lease_until < $1 ORDER BY id"
        )))
        .bind(now)
        .fetch_all(&self.db)
        .await
    }

    /// A page of runs, newest first, filtered as `query` says.
    pub async fn runs_page(&self, query: &RunQuery<'_>) -> Result<Vec<RunRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE ($1 IS NULL OR project = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR trigger = $3)
               AND ($4 IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5"
        )))
        .bind(query.project)
        .bind(query.status)
        .bind(query.trigger)
        .bind(query.before_id)
        .bind(query.limit)
        .fetch_all(&self.db)
        .await
    }

    /// Runs still marked running, whatever process owns them.
    pub async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, Error> {
        query_as(AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' ORDER BY id")))
            .fetch_all(&self.db)
            .await
    }

    /// The stages of a run, in order.
    pub async fn stages(&self, run_id: i64) -> Result<Vec<StageRecord>, Error> {
        query_as(
            "SELECT run_id, position, name, kind, status, reason, attempts, outputs, started_at, finished_at
             FROM stages WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await
    }

    /// The stages of several runs (a page of them), in order within each run.
    pub async fn stages_of(&self, run_ids: &[i64]) -> Result<Vec<StageRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT run_id, position, name, kind, status, reason, attempts, outputs, started_at, finished_at
             FROM stages WHERE run_id IN {} ORDER BY run_id, position",
            id_list(run_ids)
        )))
        .fetch_all(&self.db)
        .await
    }

    /// Records the commit a run checked out.
    pub async fn set_run_commit(&self, run_id: i64, commit: &str) -> Result<(), Error> {
        query("UPDATE runs SET commit_sha = $2 WHERE id = $1").bind(run_id).bind(commit).execute(&self.db).await?;
        Ok(())
    }

    /// Ends a run, in one transaction with the stages it left running (given the run's status and
    /// reason) or pending (skipped). Only a run still queued or running changes, so a late writer
    /// cannot overwrite a recovery.
    pub async fn finish_run(&self, run_id: i64, status: RunStatus, reason: Option<&str>) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        let now = now_ms();
        let ended = query(
            "UPDATE runs SET status = $2, reason = $3, finished_at = $4 WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(run_id)
        .bind(status)
        .bind(reason)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if ended == 1 && status != RunStatus::Succeeded {
            query(
                "UPDATE stages SET status = $2, reason = COALESCE(reason, $3), finished_at = $4
                 WHERE run_id = $1 AND status = 'running'",
            )
            .bind(run_id)
            .bind(if status == RunStatus::Cancelled { StageStatus::Cancelled } else { StageStatus::Failed })
            .bind(reason)
            .bind(now)
            .execute(&mut tx)
            .await?;
            skip_pending(&mut tx, run_id).await?;
        }
        if ended == 1 {
            run_event(&mut tx, EventKind::RunFinished, run_id, None).await?;
        }
        tx.commit().await?;
        self.appended();
        Ok(())
    }

    /// Cancels a run no process runs: true if it was queued or waiting for an approval.
    pub async fn cancel_queued(&self, run_id: i64) -> Result<bool, Error> {
        let mut tx = self.db.begin().await?;
        let now = now_ms();
        let done = query(
            "UPDATE runs SET status = 'cancelled',
                 reason = CASE status WHEN 'waiting' THEN 'cancelled while it waited for an approval'
                     ELSE 'cancelled before it started' END,
                 finished_at = $2
             WHERE id = $1 AND status IN ('queued', 'waiting')",
        )
        .bind(run_id)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if done == 1 {
            query("UPDATE stages SET status = 'cancelled', finished_at = $2 WHERE run_id = $1 AND status = 'waiting'")
                .bind(run_id)
                .bind(now)
                .execute(&mut tx)
                .await?;
            query(
                "UPDATE approvals SET status = 'rejected', decided_by = 'cancel', decided_at = $2,
                     reason = 'the run was cancelled' WHERE run_id = $1 AND status = 'pending'",
            )
            .bind(run_id)
            .bind(now)
            .execute(&mut tx)
            .await?;
        }
        skip_pending(&mut tx, run_id).await?;
        if done == 1 {
            run_event(&mut tx, EventKind::RunFinished, run_id, None).await?;
        }
        tx.commit().await?;
        self.appended();
        Ok(done == 1)
    }

    /// Asks the process executing a run to stop. Returns false if the run already ended.
    pub async fn request_cancel(&self, run_id: i64) -> Result<bool, Error> {
        let done = query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'")
            .bind(run_id)
            .execute(&self.db)
            .await?;
        Ok(done == 1)
    }

    /// Whether `cancel` was asked for this run.
    pub async fn cancel_requested(&self, run_id: i64) -> Result<bool, Error> {
        let flag: Option<bool> = query_scalar("SELECT cancel_requested FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.db)
            .await?;
        Ok(flag.unwrap_or(false))
    }

    /// Marks a stage running and counts the attempt.
    pub async fn start_stage(&self, run_id: i64, position: i64) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        query(
            "UPDATE stages SET status = 'running', reason = NULL, attempts = attempts + 1,
             started_at = COALESCE(started_at, $3) WHERE run_id = $1 AND position = $2",
        )
        .bind(run_id)
        .bind(position)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
        run_event(&mut tx, EventKind::StageStarted, run_id, Some(position)).await?;
        tx.commit().await?;
        self.appended();
        Ok(())
    }

    /// Ends a stage with its outputs (JSON object) or failure reason.
    pub async fn finish_stage(
        &self,
        run_id: i64,
        position: i64,
        status: StageStatus,
        reason: Option<&str>,
        outputs: &serde_json::Value,
    ) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        query(
            "UPDATE stages SET status = $3, reason = $4, outputs = $5, finished_at = $6
             WHERE run_id = $1 AND position = $2",
        )
        .bind(run_id)
        .bind(position)
        .bind(status)
        .bind(reason)
        .bind(outputs)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
        run_event(&mut tx, EventKind::StageFinished, run_id, Some(position)).await?;
        tx.commit().await?;
        self.appended();
        Ok(())
    }

    /// Marks a run that no live process owns as failed, with its running stages and jobs.
    pub async fn fail_interrupted(&self, run_id: i64, reason: &str) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        let now = now_ms();
        let failed = query(
            "UPDATE runs SET status = 'failed', reason = $2, finished_at = $3 WHERE id = $1 AND status = 'running'",
        )
        .bind(run_id)
        .bind(reason)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if failed == 1 {
            run_event(&mut tx, EventKind::RunFinished, run_id, None).await?;
        }
        query("UPDATE stages SET status = 'failed', reason = $2, finished_at = $3 WHERE run_id = $1 AND status = 'running'")
            .bind(run_id)
            .bind(reason)
            .bind(now)
            .execute(&mut tx)
            .await?;
        skip_pending(&mut tx, run_id).await?;
        query(
            "UPDATE training_jobs SET status = 'Failed', secondary_status = 'Failed', failure_reason = $2, finished_at = $3
             WHERE run_id = $1 AND status IN ('InProgress', 'Stopping')",
        )
        .bind(run_id)
        .bind(reason)
        .bind(now)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        self.appended();
        Ok(())
    }
}

/// Marks the stages of a run that never started as skipped (a run ending early).
pub(crate) async fn skip_pending(tx: &mut Tx, run_id: i64) -> Result<(), Error> {
    query("UPDATE stages SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'")
        .bind(run_id)
        .execute(tx)
        .await?;
    Ok(())
}
