//! Endpoints: which model version each named endpoint serves, so a restart can bring them back.

use serde::Serialize;
use sqlx::FromRow;

use crate::events::{EventKind, event};
use crate::{Error, Store, now_ms};

/// A named endpoint and the model version it serves.
#[derive(Clone, Debug, FromRow, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EndpointRecord {
    /// The endpoint name, as in `/endpoints/{name}/invocations`.
    pub name: String,
    /// The model group served.
    pub model_group: String,
    /// The version served.
    pub model_version: i64,
    /// The run that last deployed it.
    pub run_id: i64,
    /// How many instances serve it.
    pub instances: i64,
    /// The instance type of each container instance; `None` is the default type.
    pub instance_type: Option<String>,
    /// When it is deleted (ms), for an endpoint deployed with a TTL.
    pub expires_at: Option<i64>,
    /// For a multi-model endpoint: the folder of `model.tar.gz` files it serves.
    pub multi_model_dir: Option<String>,
    /// For a multi-model endpoint: how many bytes of models it keeps loaded.
    pub memory_budget_bytes: Option<i64>,
    /// For a multi-model endpoint served by a container: its image (built-in models otherwise).
    pub multi_model_image: Option<String>,
    /// For a serial inference pipeline: its steps' endpoints, as a JSON array.
    pub chain: Option<String>,
    /// The percentage of requests captured with their answers.
    #[sqlx(default)]
    pub capture_percent: Option<f64>,
    /// When it last changed (ms).
    pub updated_at: i64,
}

/// One production variant of an endpoint: a model version, its weight and its instances.
#[derive(Clone, Debug, FromRow, Serialize, PartialEq)]
pub struct VariantRecord {
    /// The variant's name (`AllTraffic` unless the deploy named it).
    pub variant: String,
    pub model_group: String,
    pub model_version: i64,
    /// Its share of traffic relative to the other variants' weights.
    pub weight: f64,
    pub instances: i64,
    pub instance_type: Option<String>,
}

impl Store {
    /// Replaces an endpoint's variants (in one transaction).
    pub async fn set_endpoint_variants(&self, endpoint: &str, variants: &[VariantRecord]) -> Result<(), Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM endpoint_variants WHERE endpoint = $1").bind(endpoint).execute(&mut *tx).await?;
        for v in variants {
            sqlx::query(
                "INSERT INTO endpoint_variants (endpoint, variant, model_group, model_version, weight, instances, instance_type)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(endpoint)
            .bind(&v.variant)
            .bind(&v.model_group)
            .bind(v.model_version)
            .bind(v.weight)
            .bind(v.instances)
            .bind(&v.instance_type)
            .execute(&mut *tx)
            .await?;
        }
        let shown: Vec<serde_json::Value> = variants
            .iter()
            .map(|v| {
                serde_json::json!({ "variant": v.variant, "model_group": v.model_group,
                    "model_version": v.model_version, "weight": v.weight, "instances": v.instances })
            })
            .collect();
        let data = serde_json::json!({ "endpoint": endpoint, "variants": shown });
        event(&mut tx, EventKind::EndpointUpdated, None, data).await?;
        tx.commit().await?;
        self.appended();
        Ok(())
    }

    /// Sets the share of an endpoint's traffic that is captured (`None`: none).
    pub async fn set_endpoint_capture(&self, name: &str, percent: Option<f64>) -> Result<(), Error> {
        sqlx::query("UPDATE endpoints SET capture_percent = $2 WHERE name = $1")
            .bind(name)
            .bind(percent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an endpoint and its variants; whether it existed.
    pub async fn delete_endpoint(&self, name: &str) -> Result<bool, Error> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM endpoint_variants WHERE endpoint = $1").bind(name).execute(&mut *tx).await?;
        let deleted = sqlx::query("DELETE FROM endpoints WHERE name = $1").bind(name).execute(&mut *tx).await?;
        if deleted.rows_affected() > 0 {
            event(&mut tx, EventKind::EndpointDeleted, None, serde_json::json!({ "endpoint": name })).await?;
        }
        tx.commit().await?;
        self.appended();
        Ok(deleted.rows_affected() > 0)
    }

    /// An endpoint's variants by name; empty for an endpoint recorded before variants were.
    pub async fn endpoint_variants(&self, endpoint: &str) -> Result<Vec<VariantRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT variant, model_group, model_version, weight, instances, instance_type
             FROM endpoint_variants WHERE endpoint = $1 ORDER BY variant",
        )
        .bind(endpoint)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Points an endpoint at a model version with its instance count and type, creating it if needed.
    pub async fn set_endpoint(&self, record: &EndpointRecord) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO endpoints (name, model_group, model_version, run_id, instances, instance_type, updated_at,
                 expires_at, multi_model_dir, memory_budget_bytes, chain, multi_model_image)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (name) DO UPDATE SET model_group = $2, model_version = $3, run_id = $4, instances = $5,
                 instance_type = $6, updated_at = $7, expires_at = $8, multi_model_dir = $9, memory_budget_bytes = $10,
                 chain = $11, multi_model_image = $12",
        )
        .bind(&record.name)
        .bind(&record.model_group)
        .bind(record.model_version)
        .bind(record.run_id)
        .bind(record.instances)
        .bind(&record.instance_type)
        .bind(now_ms())
        .bind(record.expires_at)
        .bind(&record.multi_model_dir)
        .bind(record.memory_budget_bytes)
        .bind(&record.chain)
        .bind(&record.multi_model_image)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All endpoints by name.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT name, model_group, model_version, run_id, instances, instance_type, expires_at, multi_model_dir,
                 memory_budget_bytes, chain, capture_percent, multi_model_image, updated_at
             FROM endpoints ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// One endpoint.
    pub async fn endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT name, model_group, model_version, run_id, instances, instance_type, expires_at, multi_model_dir,
                 memory_budget_bytes, chain, capture_percent, multi_model_image, updated_at
             FROM endpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }
}
