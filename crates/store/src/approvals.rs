//! Approvals: a run waiting on a person, bound to the model version it would promote and its
//! evidence. Asking, deciding and expiring each change the approval, the stage, the run and the
//! model version in one transaction, so a waiting run survives any crash as it was.

use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow};

use crate::db::{Tx, query, query_as};
use crate::events::{EventKind, run_event};
use crate::runs::skip_pending;
use crate::{Error, ModelApprovalStatus, Store, now_ms};

/// Where an approval is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

/// One approval stage of a run.
#[derive(Clone, Debug, FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalRecord {
    pub run_id: i64,
    /// The approval stage's position and name.
    pub position: i64,
    pub stage: String,
    /// The model version it lets through, when the run registered one before it.
    pub model_group: Option<String>,
    pub model_version: Option<i64>,
    /// What the run found before asking: metrics, the smoke test, the image and its SBOM verdict.
    #[schema(value_type = Object)]
    pub evidence: Json<serde_json::Value>,
    pub status: ApprovalStatus,
    /// When it was asked for, and when it is rejected unless decided (ms).
    pub requested_at: i64,
    pub expires_at: Option<i64>,
    /// Who decided (a token's name, `local`, or `timeout`), when, and why.
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

/// What an approval stage asks for.
#[derive(Clone, Debug)]
pub struct NewApproval<'a> {
    pub run_id: i64,
    pub position: i64,
    pub stage: &'a str,
    pub model: Option<(&'a str, i64)>,
    pub evidence: &'a serde_json::Value,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "run_id, position, stage, model_group, model_version, evidence, status, requested_at, \
     expires_at, decided_by, decided_at, reason";

impl Store {
    /// Puts a running run to wait at its approval stage: the run and the stage become `waiting`,
    /// with no process owning them, and the model version `PendingManualApproval`.
    pub async fn request_approval(&self, new: &NewApproval<'_>) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        let now = now_ms();
        query(
            "INSERT INTO approvals (run_id, position, stage, model_group, model_version, evidence, status, requested_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)
             ON CONFLICT (run_id, position) DO UPDATE SET evidence = $6, status = 'pending', requested_at = $7,
                 expires_at = $8, decided_by = NULL, decided_at = NULL, reason = NULL",
        )
        .bind(new.run_id)
        .bind(new.position)
        .bind(new.stage)
        .bind(new.model.map(|(group, _)| group))
        .bind(new.model.map(|(_, version)| version))
        .bind(new.evidence)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut tx)
        .await?;
        query("UPDATE stages SET status = 'waiting', started_at = COALESCE(started_at, $3) WHERE run_id = $1 AND position = $2")
            .bind(new.run_id)
            .bind(new.position)
            .bind(now)
            .execute(&mut tx)
            .await?;
        let waiting = query("UPDATE runs SET status = 'waiting', owner = NULL WHERE id = $1 AND status = 'running'")
            .bind(new.run_id)
            .execute(&mut tx)
            .await?;
        if waiting != 1 {
            return Err(Error::Conflict(format!("run {} is not running", new.run_id)));
        }
        if let Some((group, version)) = new.model {
            set_model_approval(&mut tx, group, version, ModelApprovalStatus::PendingManualApproval).await?;
        }
        run_event(&mut tx, EventKind::RunWaiting, new.run_id, Some(new.position)).await?;
        tx.commit().await?;
        self.appended();
        Ok(())
    }

    /// Decides a waiting run's approval. Approved, its stage succeeds and the run is queued again
    /// to go on after it; rejected, the stage and the run fail with the reason and the stages after
    /// it are skipped. The model version becomes `Approved` or `Rejected`.
    pub async fn decide_approval(
        &self,
        run_id: i64,
        approve: bool,
        by: &str,
        reason: &str,
    ) -> Result<ApprovalRecord, Error> {
        let mut tx = self.db.begin().await?;
        let now = now_ms();
        let pending: Option<ApprovalRecord> = query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE run_id = $1 AND status = 'pending'"
        )))
        .bind(run_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some(mut approval) = pending else {
            return Err(Error::Conflict("the run is not waiting for an approval".to_owned()));
        };
        let status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Rejected };
        // Conditional, so that of two people deciding at once only one decides.
        let decided = query(
            "UPDATE approvals SET status = $3, decided_by = $4, decided_at = $5, reason = $6
             WHERE run_id = $1 AND position = $2 AND status = 'pending'",
        )
        .bind(run_id)
        .bind(approval.position)
        .bind(status)
        .bind(by)
        .bind(now)
        .bind(reason)
        .execute(&mut tx)
        .await?;
        if decided != 1 {
            return Err(Error::Conflict("the run is not waiting for an approval".to_owned()));
        }
        if let (Some(group), Some(version)) = (&approval.model_group, approval.model_version) {
            let model_status = if approve { ModelApprovalStatus::Approved } else { ModelApprovalStatus::Rejected };
            set_model_approval(&mut tx, group, version, model_status).await?;
        }
        let decision = serde_json::json!({
            "decision": status, "by": by, "reason": reason,
            "model_group": approval.model_group, "model_version": approval.model_version,
        });
        let verdict =
            if approve { format!("approved by {by}: {reason}") } else { format!("rejected by {by}: {reason}") };
        query(
            "UPDATE stages SET status = $3, reason = $4, outputs = $5, finished_at = $6 WHERE run_id = $1 AND position = $2",
        )
        .bind(run_id)
        .bind(approval.position)
        .bind(if approve { crate::StageStatus::Succeeded } else { crate::StageStatus::Failed })
        .bind((!approve).then_some(verdict.as_str()))
        .bind(decision)
        .bind(now)
        .execute(&mut tx)
        .await?;
        run_event(&mut tx, EventKind::StageFinished, run_id, Some(approval.position)).await?;
        if approve {
            query("UPDATE runs SET status = 'queued' WHERE id = $1 AND status = 'waiting'")
                .bind(run_id)
                .execute(&mut tx)
                .await?;
            run_event(&mut tx, EventKind::RunQueued, run_id, None).await?;
        } else {
            skip_pending(&mut tx, run_id).await?;
            let reason = format!("stage `{}` failed: {verdict}", approval.stage);
            query(
                "UPDATE runs SET status = 'failed', reason = $2, finished_at = $3 WHERE id = $1 AND status = 'waiting'",
            )
            .bind(run_id)
            .bind(&reason)
            .bind(now)
            .execute(&mut tx)
            .await?;
            run_event(&mut tx, EventKind::RunFinished, run_id, None).await?;
        }
        tx.commit().await?;
        self.appended();
        approval.status = status;
        approval.decided_by = Some(by.to_owned());
        approval.decided_at = Some(now);
        approval.reason = Some(reason.to_owned());
        Ok(approval)
    }

    /// The runs whose pending approval expires before `now`.
    pub async fn expired_approvals(&self, now: i64) -> Result<Vec<ApprovalRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= $1 ORDER BY run_id"
        )))
        .bind(now)
        .fetch_all(&self.db)
        .await
    }

    /// The approval that let a model version through, if one did.
    pub async fn approval_of(&self, group: &str, version: i64) -> Result<Option<ApprovalRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE model_group = $1 AND model_version = $2 AND status = 'approved'
             ORDER BY decided_at DESC LIMIT 1"
        )))
        .bind(group)
        .bind(version)
        .fetch_optional(&self.db)
        .await
    }

    /// The approval stage waiting on a model version, if one is.
    pub async fn pending_approval_of(&self, group: &str, version: i64) -> Result<Option<ApprovalRecord>, Error> {
        query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE model_group = $1 AND model_version = $2 AND status = 'pending'"
        )))
        .bind(group)
        .bind(version)
        .fetch_optional(&self.db)
        .await
    }

    /// A run's approvals, by stage.
    pub async fn approvals(&self, run_id: i64) -> Result<Vec<ApprovalRecord>, Error> {
        query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM approvals WHERE run_id = $1 ORDER BY position")))
            .bind(run_id)
            .fetch_all(&self.db)
            .await
    }
}

impl Store {
    /// Sets a version's approval status outside an approval stage (SageMaker's
    /// UpdateModelPackage); false when there is no such version.
    pub async fn set_model_approval_status(
        &self,
        group: &str,
        version: i64,
        status: ModelApprovalStatus,
    ) -> Result<bool, Error> {
        let changed = query("UPDATE model_versions SET approval_status = $3 WHERE model_group = $1 AND version = $2")
            .bind(group)
            .bind(version)
            .bind(status)
            .execute(&self.db)
            .await?;
        Ok(changed == 1)
    }
}

async fn set_model_approval(tx: &mut Tx, group: &str, version: i64, status: ModelApprovalStatus) -> Result<(), Error> {
    query("UPDATE model_versions SET approval_status = $3 WHERE model_group = $1 AND version = $2")
        .bind(group)
        .bind(version)
        .bind(status)
        .execute(tx)
        .await?;
    Ok(())
}
crate::db::text_enum!(ApprovalStatus);
