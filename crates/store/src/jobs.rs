//! Training jobs: `<pipeline>-<run>`, with SageMaker's status and secondary status.

use serde::Serialize;
use sqlx::FromRow;
use sqlx::types::Json;

use sqlx::AssertSqlSafe;

use crate::db::{query, query_as, query_scalar};
use crate::{Error, SecondaryStatus, Store, TrainingJobStatus, now_ms};

/// A training job as DescribeTrainingJob would show it.
#[derive(Clone, Debug, FromRow, Serialize)]
pub struct TrainingJobRecord {
    /// `<pipeline>-<run>`.
    pub name: String,
    /// The run that started it.
    pub run_id: i64,
    /// `builtin:decision-tree`, `process:<dir>`, ...
    pub algorithm: String,
    pub status: TrainingJobStatus,
    pub secondary_status: SecondaryStatus,
    /// Why the job failed (the first 1024 characters of `/opt/ml/output/failure`).
    pub failure_reason: Option<String>,
    /// Hyperparameters as a JSON object of strings.
    pub hyperparameters: Json<serde_json::Value>,
    /// Final metric values as a JSON object.
    pub metrics: Json<serde_json::Value>,
    /// Where `model.tar.gz` was stored.
    pub model_uri: Option<String>,
    /// Its sha256.
    pub model_sha256: Option<String>,
    /// When the job was created (ms).
    pub created_at: i64,
    /// When it ended (ms).
    pub finished_at: Option<i64>,
    /// Each secondary status it went through, oldest first.
    pub transitions: Json<Vec<Transition>>,
}

/// A secondary status a job entered, and when (SageMaker's `SecondaryStatusTransitions`; a
/// transition ends when the next one starts).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Transition {
    pub status: SecondaryStatus,
    pub start_ms: i64,
}

const COLUMNS: &str = "name, run_id, algorithm, status, secondary_status, failure_reason, hyperparameters,
    metrics, model_uri, model_sha256, created_at, finished_at, transitions";

impl Store {
    /// Creates a job in `InProgress / Starting`.
    pub async fn create_training_job(
        &self,
        name: &str,
        run_id: i64,
        algorithm: &str,
        hyperparameters: &str,
    ) -> Result<(), Error> {
        let hyperparameters: serde_json::Value = serde_json::from_str(hyperparameters)?;
        let now = now_ms();
        let transitions = serde_json::to_value([Transition { status: SecondaryStatus::Starting, start_ms: now }])?;
        query(
            "INSERT INTO training_jobs (name, run_id, algorithm, status, secondary_status, hyperparameters, created_at, transitions)
             VALUES ($1, $2, $3, 'InProgress', 'Starting', $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET run_id = $2, algorithm = $3, status = 'InProgress',
                 secondary_status = 'Starting', failure_reason = NULL, hyperparameters = $4,
                 metrics = '{}', model_uri = NULL, model_sha256 = NULL, created_at = $5, finished_at = NULL,
                 transitions = $6",
        )
        .bind(name)
        .bind(run_id)
        .bind(algorithm)
        .bind(hyperparameters)
        .bind(now)
        .bind(transitions)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Moves a job to a new status pair, noting the secondary status as a transition when it
    /// changed; a terminal status also sets the end time.
    pub async fn set_training_job_status(
        &self,
        name: &str,
        status: TrainingJobStatus,
        secondary_status: SecondaryStatus,
        failure_reason: Option<&str>,
    ) -> Result<(), Error> {
        let now = now_ms();
        let finished = status.is_finished().then_some(now);
        let mut tx = self.db.begin().await?;
        let Some(Json(mut transitions)) =
            query_scalar::<Json<Vec<Transition>>>("SELECT transitions FROM training_jobs WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut tx)
                .await?
        else {
            return Ok(());
        };
        if transitions.last().is_none_or(|last| last.status != secondary_status) {
            transitions.push(Transition { status: secondary_status, start_ms: now });
        }
        query(
            "UPDATE training_jobs SET status = $2, secondary_status = $3,
                 failure_reason = COALESCE($4, failure_reason), finished_at = COALESCE($5, finished_at),
                 transitions = $6
             WHERE name = $1",
        )
        .bind(name)
        .bind(status)
        .bind(secondary_status)
        .bind(failure_reason)
        .bind(finished)
        .bind(serde_json::to_value(&transitions)?)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    /// Records a finished job's metrics and stored model.
    pub async fn set_training_job_output(
        &self,
        name: &str,
        metrics: &serde_json::Value,
        model_uri: Option<&str>,
        model_sha256: Option<&str>,
    ) -> Result<(), Error> {
        query("UPDATE training_jobs SET metrics = $2, model_uri = $3, model_sha256 = $4 WHERE name = $1")
            .bind(name)
            .bind(metrics)
            .bind(model_uri)
            .bind(model_sha256)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// The jobs a run started, oldest first.
    pub async fn training_jobs_of(&self, run_id: i64) -> Result<Vec<TrainingJobRecord>, Error> {
        query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM training_jobs WHERE run_id = $1 ORDER BY created_at")))
            .bind(run_id)
            .fetch_all(&self.db)
            .await
    }

    /// The newest job whose model is stored at `uri`.
    pub async fn training_job_by_model(&self, uri: &str) -> Result<Option<TrainingJobRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM training_jobs WHERE model_uri = $1 ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(uri)
        .fetch_optional(&self.db)
        .await
    }

    /// A job by name.
    pub async fn training_job(&self, name: &str) -> Result<TrainingJobRecord, Error> {
        query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM training_jobs WHERE name = $1")))
            .bind(name)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("training job `{name}`")))
    }
}
