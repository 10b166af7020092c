//! What SageMaker's control plane made that sagebrush has no concept of its own for: a model's
//! name for a registered version, an endpoint configuration, an endpoint's SageMaker status, a
//! model package group's description, a resource's tags. Each is a JSON document under its kind and name.

use serde::Serialize;
use sqlx::FromRow;
use sqlx::types::Json;

use crate::db::{query, query_as};
use crate::{Error, Store, now_ms};

/// The kinds of resource kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// CreateModel: the registered version the name stands for, and the request.
    Model,
    /// CreateEndpointConfig: its production variants.
    EndpointConfig,
    /// CreateEndpoint and UpdateEndpoint: the configuration, status and failure reason.
    Endpoint,
    /// CreateModelPackageGroup: a model group's description, before or beside its versions.
    ModelPackageGroup,
    /// AddTags and a Create's `Tags`: a resource's tags, named `<kind>/<name>` as its ARN ends.
    Tags,
}

impl ResourceKind {
    fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Model => "model",
            ResourceKind::EndpointConfig => "endpoint-config",
            ResourceKind::Endpoint => "endpoint",
            ResourceKind::ModelPackageGroup => "model-package-group",
            ResourceKind::Tags => "tags",
        }
    }
}

/// One resource.
#[derive(Clone, Debug, FromRow, Serialize)]
pub struct ResourceRecord {
    pub name: String,
    pub body: Json<serde_json::Value>,
    /// When it was made (ms).
    pub created_at: i64,
    /// When it last changed (ms).
    pub updated_at: i64,
}

impl Store {
    /// Records a new resource; false when one of that kind and name exists.
    pub async fn create_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<bool, Error> {
        let now = now_ms();
        let added = query(
            "INSERT INTO sagemaker_resources (kind, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (kind, name) DO NOTHING",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(body)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(added == 1)
    }

    /// Replaces a resource's body; false when there is none.
    pub async fn update_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<bool, Error> {
        let changed = query("UPDATE sagemaker_resources SET body = $3, updated_at = $4 WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .bind(body)
            .bind(now_ms())
            .execute(&self.db)
            .await?;
        Ok(changed == 1)
    }

    pub async fn resource(&self, kind: ResourceKind, name: &str) -> Result<Option<ResourceRecord>, Error> {
        query_as("SELECT name, body, created_at, updated_at FROM sagemaker_resources WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&self.db)
            .await
    }

    /// Every resource of a kind, the newest first.
    pub async fn resources(&self, kind: ResourceKind) -> Result<Vec<ResourceRecord>, Error> {
        query_as(
            "SELECT name, body, created_at, updated_at FROM sagemaker_resources WHERE kind = $1
             ORDER BY created_at DESC, name",
        )
        .bind(kind.as_str())
        .fetch_all(&self.db)
        .await
    }

    /// Removes a resource; false when there was none.
    pub async fn delete_resource(&self, kind: ResourceKind, name: &str) -> Result<bool, Error> {
        let removed = query("DELETE FROM sagemaker_resources WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .execute(&self.db)
            .await?;
        Ok(removed == 1)
    }
}
