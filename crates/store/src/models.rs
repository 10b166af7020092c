//! The model registry: model groups, versions, lineage and approval status.

use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow};

use crate::db::{query, query_as, query_scalar};
use crate::events::{EventKind, event};
use crate::{Error, ModelApprovalStatus, Store, now_ms};

/// A registered model.
#[derive(Clone, Debug, FromRow, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ModelVersionRecord {
    /// The group, by default the pipeline name.
    pub model_group: String,
    /// 1, 2, 3 within the group.
    pub version: i64,
    /// The run that registered it.
    pub run_id: i64,
    /// What trains and serves it: `builtin:decision-tree`, `process:<dir>`.
    pub algorithm: String,
    /// Where `model.tar.gz` is stored.
    pub artifact_uri: String,
    /// Its sha256.
    pub artifact_sha256: String,
    /// Commit, data checksums, hyperparameters, metrics, run: a JSON object.
    #[schema(value_type = Object)]
    pub lineage: sqlx::types::Json<serde_json::Value>,
    pub approval_status: ModelApprovalStatus,
    /// When it was registered (ms).
    pub created_at: i64,
}

/// What is needed to register a model.
#[derive(Clone, Debug)]
pub struct NewModelVersion<'a> {
    /// The group.
    pub model_group: &'a str,
    /// The registering run.
    pub run_id: i64,
    /// The algorithm reference.
    pub algorithm: &'a str,
    /// The stored artifact.
    pub artifact_uri: &'a str,
    /// Its sha256.
    pub artifact_sha256: &'a str,
    /// Lineage JSON.
    pub lineage: &'a serde_json::Value,
    /// Initial approval status.
    pub approval_status: ModelApprovalStatus,
}

const COLUMNS: &str =
    "model_group, version, run_id, algorithm, artifact_uri, artifact_sha256, lineage, approval_status, created_at";

impl Store {
    /// Registers a new version, numbered after the group's latest (counting versions retention removed).
    pub async fn register_model(&self, new: NewModelVersion<'_>) -> Result<ModelVersionRecord, Error> {
        let mut tx = self.db.begin().await?;
        // The group's counter row stays locked until commit: concurrent registrations take turns.
        let version: i64 = query_scalar(
            "INSERT INTO version_floor (model_group, version) VALUES ($1, 1)
             ON CONFLICT (model_group) DO UPDATE SET version = version_floor.version + 1 RETURNING version",
        )
        .bind(new.model_group)
        .fetch_one(&mut tx)
        .await?;
        query(
            "INSERT INTO model_versions (model_group, version, run_id, algorithm, artifact_uri, artifact_sha256, lineage, approval_status, created_at)
             VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new.model_group)
        .bind(new.run_id)
        .bind(new.algorithm)
        .bind(new.artifact_uri)
        .bind(new.artifact_sha256)
        .bind(new.lineage)
        .bind(new.approval_status)
        .bind(now_ms())
        .bind(version)
        .execute(&mut tx)
        .await?;
        let project: Option<String> =
            query_scalar("SELECT project FROM runs WHERE id = $1").bind(new.run_id).fetch_optional(&mut tx).await?;
        let data = serde_json::json!({ "model_group": new.model_group, "version": version, "run_id": new.run_id });
        event(&mut tx, EventKind::ModelRegistered, project.as_deref(), data).await?;
        tx.commit().await?;
        self.appended();
        self.model_version(new.model_group, version).await
    }

    /// One version of a group.
    pub async fn model_version(&self, group: &str, version: i64) -> Result<ModelVersionRecord, Error> {
        query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM model_versions WHERE model_group = $1 AND version = $2")))
            .bind(group)
            .bind(version)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("model {group} version {version}")))
    }

    /// Versions, newest first, optionally of one group.
    pub async fn model_versions(&self, group: Option<&str>) -> Result<Vec<ModelVersionRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM model_versions WHERE ($1 IS NULL OR model_group = $1)
             ORDER BY model_group, version DESC"
        )))
        .bind(group)
        .fetch_all(&self.db)
        .await
    }
}
