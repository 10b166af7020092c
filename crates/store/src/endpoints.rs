//! Endpoints: which model version each named endpoint serves, so a restart can bring them back.

use serde::Serialize;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::db::{Tx, query, query_as, query_scalar};
use crate::events::{EventKind, event};
use crate::{Error, Store, now_ms};

/// A named endpoint and what it serves.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EndpointRecord {
    /// The endpoint name, as in `/endpoints/{name}/invocations`.
    pub name: String,
    /// What it serves: registered model versions (see its variants), models loaded on demand, or a pipeline.
    #[serde(flatten)]
    pub kind: EndpointKind,
    /// The run that last deployed it.
    pub run_id: i64,
    /// How many instances serve it.
    pub instances: i64,
    /// The instance type of each container instance; `None` is the default type.
    pub instance_type: Option<String>,
    /// When it is deleted (ms), for an endpoint deployed with a TTL.
    pub expires_at: Option<i64>,
    /// The percentage of requests captured with their answers.
    pub capture_percent: Option<f64>,
    /// When it last changed (ms).
    pub updated_at: i64,
}

/// What an endpoint serves.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndpointKind {
    /// Registered model versions, in weighted production variants; `model_group` and
    /// `model_version` name the one deployed last.
    Model { model_group: String, model_version: i64 },
    /// The `<name>.tar.gz` models of a folder, loaded on first use within a memory budget: in
    /// this process (built-in models), or by one container of `image` through SageMaker's
    /// multi-model API.
    MultiModel { dir: String, memory_budget_bytes: u64, image: Option<String> },
    /// A serial inference pipeline through these endpoints, in order.
    Chain { steps: Vec<String> },
}

impl EndpointKind {
    /// What it serves, in a few words: `iris v3`, `multi-model` or `inference pipeline`.
    pub fn serves(&self) -> String {
        match self {
            EndpointKind::Model { model_group, model_version } => format!("{model_group} v{model_version}"),
            EndpointKind::MultiModel { .. } => "multi-model".to_owned(),
            EndpointKind::Chain { .. } => "inference pipeline".to_owned(),
        }
    }
}

/// An `endpoints` row as stored; [`EndpointRecord`] is what it means.
#[derive(FromRow)]
struct EndpointRow {
    name: String,
    model_group: String,
    model_version: i64,
    run_id: i64,
    instances: i64,
    instance_type: Option<String>,
    expires_at: Option<i64>,
    multi_model_dir: Option<String>,
    memory_budget_bytes: Option<i64>,
    multi_model_image: Option<String>,
    chain: Option<Json<Vec<String>>>,
    capture_percent: Option<f64>,
    updated_at: i64,
}

impl TryFrom<EndpointRow> for EndpointRecord {
    type Error = Error;

    fn try_from(row: EndpointRow) -> Result<EndpointRecord, Error> {
        let kind = match (row.multi_model_dir, row.chain) {
            (Some(dir), None) => EndpointKind::MultiModel {
                dir,
                memory_budget_bytes: u64::try_from(row.memory_budget_bytes.unwrap_or(0)).unwrap_or(0),
                image: row.multi_model_image,
            },
            (None, Some(Json(steps))) => EndpointKind::Chain { steps },
            (None, None) => EndpointKind::Model { model_group: row.model_group, model_version: row.model_version },
            (Some(_), Some(_)) => {
                return Err(Error::Conflict(format!(
                    "endpoint {} is recorded as both multi-model and a pipeline",
                    row.name
                )));
            }
        };
        Ok(EndpointRecord {
            name: row.name,
            kind,
            run_id: row.run_id,
            instances: row.instances,
            instance_type: row.instance_type,
            expires_at: row.expires_at,
            capture_percent: row.capture_percent,
            updated_at: row.updated_at,
        })
    }
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

/// The project whose run deployed an endpoint last: its events belong to that project.
async fn deploying_project(tx: &mut Tx, endpoint: &str) -> Result<Option<String>, Error> {
    query_scalar("SELECT r.project FROM endpoints e JOIN runs r ON r.id = e.run_id WHERE e.name = $1")
        .bind(endpoint)
        .fetch_optional(tx)
        .await
}

impl Store {
    /// Replaces an endpoint's variants (in one transaction).
    pub async fn set_endpoint_variants(&self, endpoint: &str, variants: &[VariantRecord]) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        query("DELETE FROM endpoint_variants WHERE endpoint = $1").bind(endpoint).execute(&mut tx).await?;
        for v in variants {
            query(
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
            .execute(&mut tx)
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
        let project = deploying_project(&mut tx, endpoint).await?;
        event(&mut tx, EventKind::EndpointUpdated, project.as_deref(), data).await?;
        tx.commit().await?;
        self.appended();
        Ok(())
    }

    /// Sets the share of an endpoint's traffic that is captured (`None`: none).
    pub async fn set_endpoint_capture(&self, name: &str, percent: Option<f64>) -> Result<(), Error> {
        query("UPDATE endpoints SET capture_percent = $2 WHERE name = $1")
            .bind(name)
            .bind(percent)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Forgets an endpoint and its variants; whether it existed.
    pub async fn delete_endpoint(&self, name: &str) -> Result<bool, Error> {
        let mut tx = self.db.begin().await?;
        let project = deploying_project(&mut tx, name).await?;
        query("DELETE FROM endpoint_variants WHERE endpoint = $1").bind(name).execute(&mut tx).await?;
        let deleted = query("DELETE FROM endpoints WHERE name = $1").bind(name).execute(&mut tx).await?;
        if deleted > 0 {
            let data = serde_json::json!({ "endpoint": name });
            event(&mut tx, EventKind::EndpointDeleted, project.as_deref(), data).await?;
        }
        tx.commit().await?;
        self.appended();
        Ok(deleted > 0)
    }

    /// An endpoint's variants by name; empty for an endpoint recorded before variants were.
    pub async fn endpoint_variants(&self, endpoint: &str) -> Result<Vec<VariantRecord>, Error> {
        query_as(
            "SELECT variant, model_group, model_version, weight, instances, instance_type
             FROM endpoint_variants WHERE endpoint = $1 ORDER BY variant",
        )
        .bind(endpoint)
        .fetch_all(&self.db)
        .await
    }

    /// Points an endpoint at a model version with its instance count and type, creating it if needed.
    pub async fn set_endpoint(&self, record: &EndpointRecord) -> Result<(), Error> {
        // The columns of the other kinds are null; a model group is never empty, so "" marks none.
        let (group, version) = match &record.kind {
            EndpointKind::Model { model_group, model_version } => (model_group.as_str(), *model_version),
            _ => ("", 0),
        };
        let (dir, budget, image, chain) = match &record.kind {
            EndpointKind::Model { .. } => (None, None, None, None),
            EndpointKind::MultiModel { dir, memory_budget_bytes, image } => (
                Some(dir.as_str()),
                Some(i64::try_from(*memory_budget_bytes).unwrap_or(i64::MAX)),
                image.as_deref(),
                None,
            ),
            EndpointKind::Chain { steps } => (None, None, None, Some(serde_json::json!(steps))),
        };
        query(
            "INSERT INTO endpoints (name, model_group, model_version, run_id, instances, instance_type, updated_at,
                 expires_at, multi_model_dir, memory_budget_bytes, chain, multi_model_image)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (name) DO UPDATE SET model_group = $2, model_version = $3, run_id = $4, instances = $5,
                 instance_type = $6, updated_at = $7, expires_at = $8, multi_model_dir = $9, memory_budget_bytes = $10,
                 chain = $11, multi_model_image = $12",
        )
        .bind(&record.name)
        .bind(group)
        .bind(version)
        .bind(record.run_id)
        .bind(record.instances)
        .bind(&record.instance_type)
        .bind(now_ms())
        .bind(record.expires_at)
        .bind(dir)
        .bind(budget)
        .bind(chain)
        .bind(image)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// All endpoints by name.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, Error> {
        query_as::<EndpointRow>(
            "SELECT name, model_group, model_version, run_id, instances, instance_type, expires_at, multi_model_dir,
                 memory_budget_bytes, chain, capture_percent, multi_model_image, updated_at
             FROM endpoints ORDER BY name",
        )
        .fetch_all(&self.db)
        .await?
        .into_iter()
        .map(EndpointRecord::try_from)
        .collect()
    }

    /// One endpoint.
    pub async fn endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, Error> {
        query_as::<EndpointRow>(
            "SELECT name, model_group, model_version, run_id, instances, instance_type, expires_at, multi_model_dir,
                 memory_budget_bytes, chain, capture_percent, multi_model_image, updated_at
             FROM endpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.db)
        .await?
        .map(EndpointRecord::try_from)
        .transpose()
    }
}
