//! Webhook deliveries seen: a provider redelivers a delivery with the same id, and it must start nothing.

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
}
