//! Endpoints: which model version each named endpoint serves, so a restart can bring them back.

use serde::Serialize;
use sqlx::FromRow;

use crate::{Error, Store, now_ms};

/// A named endpoint and the model version it serves.
#[derive(Clone, Debug, FromRow, Serialize)]
pub struct EndpointRecord {
    /// The endpoint name, as in `/endpoints/{name}/invocations`.
    pub name: String,
    /// The model group served.
    pub model_group: String,
    /// The version served.
    pub model_version: i64,
    /// The run that last deployed it.
    pub run_id: i64,
    /// When it last changed (ms).
    pub updated_at: i64,
}

impl Store {
    /// Points an endpoint at a model version, creating it if needed.
    pub async fn set_endpoint(&self, name: &str, group: &str, version: i64, run_id: i64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO endpoints (name, model_group, model_version, run_id, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET model_group = $2, model_version = $3, run_id = $4, updated_at = $5",
        )
        .bind(name)
        .bind(group)
        .bind(version)
        .bind(run_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All endpoints by name.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, Error> {
        Ok(sqlx::query_as("SELECT name, model_group, model_version, run_id, updated_at FROM endpoints ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    /// One endpoint.
    pub async fn endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, Error> {
        Ok(sqlx::query_as("SELECT name, model_group, model_version, run_id, updated_at FROM endpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }
}
