//! What triggers have seen: webhook deliveries (a redelivered one must start nothing), and the
//! last commit, time or digest each of a project's own triggers saw.

use serde::{Deserialize, Serialize};

use crate::db::{query, query_as, query_scalar};
use crate::{Error, Store, now_ms};

/// A notification given up on after its retries.
#[derive(Clone, Debug, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotifyFailure {
    pub id: i64,
    pub project: String,
    /// Where it was to go.
    pub url: String,
    /// The event it carried, and its kind.
    pub event_id: i64,
    pub kind: String,
    pub attempts: i64,
    /// The last answer or error.
    pub error: String,
    pub at: i64,
}

impl Store {
    /// Records a delivery; false when it was seen before.
    pub async fn record_delivery(&self, provider: &str, id: &str, project: &str) -> Result<bool, Error> {
        let inserted = query(
            "INSERT INTO deliveries (provider, id, project, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider, id) DO NOTHING",
        )
        .bind(provider)
        .bind(id)
        .bind(project)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(inserted == 1)
    }

    /// Forgets a delivery whose run could not be started, so the provider's redelivery may start it.
    pub async fn forget_delivery(&self, provider: &str, id: &str) -> Result<(), Error> {
        query("DELETE FROM deliveries WHERE provider = $1 AND id = $2")
            .bind(provider)
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// What a project's `kind` trigger (`poll`, `cron`, `data`) last saw.
    pub async fn trigger_state(&self, project: &str, kind: &str) -> Result<Option<String>, Error> {
        query_scalar("SELECT state FROM trigger_state WHERE project = $1 AND kind = $2")
            .bind(project)
            .bind(kind)
            .fetch_optional(&self.db)
            .await
    }

    pub async fn set_trigger_state(&self, project: &str, kind: &str, state: &str) -> Result<(), Error> {
        query(
            "INSERT INTO trigger_state (project, kind, state, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project, kind) DO UPDATE SET state = $3, updated_at = $4",
        )
        .bind(project)
        .bind(kind)
        .bind(state)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    pub async fn record_notify_failure(
        &self,
        project: &str,
        url: &str,
        event_id: i64,
        kind: &str,
        attempts: i64,
        error: &str,
    ) -> Result<(), Error> {
        query(
            "INSERT INTO notify_failures (project, url, event_id, kind, attempts, error, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(project)
        .bind(url)
        .bind(event_id)
        .bind(kind)
        .bind(attempts)
        .bind(error)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The newest notifications given up on, newest first.
    pub async fn notify_failures(&self, limit: i64) -> Result<Vec<NotifyFailure>, Error> {
        query_as(
            "SELECT id, project, url, event_id, kind, attempts, error, at FROM notify_failures ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.db)
        .await
    }
}
