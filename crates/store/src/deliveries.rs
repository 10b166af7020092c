//! What triggers have seen: webhook deliveries (a redelivered one must start nothing), and the
//! last commit, time or digest each of a project's own triggers saw.

use crate::{Error, Store, now_ms};

impl Store {
    /// Records a delivery; false when it was seen before.
    pub async fn record_delivery(&self, provider: &str, id: &str, project: &str) -> Result<bool, Error> {
        let inserted = sqlx::query(
            "INSERT INTO deliveries (provider, id, project, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider, id) DO NOTHING",
        )
        .bind(provider)
        .bind(id)
        .bind(project)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Forgets a delivery whose run could not be started, so the provider's redelivery may start it.
    pub async fn forget_delivery(&self, provider: &str, id: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM deliveries WHERE provider = $1 AND id = $2")
            .bind(provider)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// What a project's `kind` trigger (`poll`, `cron`, `data`) last saw.
    pub async fn trigger_state(&self, project: &str, kind: &str) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar("SELECT state FROM trigger_state WHERE project = $1 AND kind = $2")
            .bind(project)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn set_trigger_state(&self, project: &str, kind: &str, state: &str) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO trigger_state (project, kind, state, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project, kind) DO UPDATE SET state = $3, updated_at = $4",
        )
        .bind(project)
        .bind(kind)
        .bind(state)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
