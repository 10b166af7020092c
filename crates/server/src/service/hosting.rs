//! SageMaker's hosting resources as sagebrush has them: a model is a registered version of the
//! model a training job made (its group is the model's name), an endpoint configuration is a
//! list of production variants, and an endpoint made from one is an ordinary endpoint, deployed
//! variant by variant, whose SageMaker status (Creating, Updating, InService, Failed) is kept
//! beside it. The control plane's model, configuration and endpoint operations call these.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use names::Name;
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::{ModelApprovalStatus, ModelVersionRecord, NewModelVersion, ResourceKind, ResourceRecord};

use super::{DeployRequest, Result, Service, WeightsRequest};
use crate::ServiceError;

/// The tasks deploying the endpoints SageMaker's API created or updated on this server, by
/// endpoint: deleting an endpoint stops its task.
#[derive(Clone, Default)]
pub(crate) struct Deploys(Arc<Mutex<HashMap<Name, tokio::task::JoinHandle<()>>>>);

impl Deploys {
    fn start(&self, name: Name, deploying: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = tokio::spawn(deploying);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(name, task);
    }

    /// Called by a task as it ends: forgets it, unless a newer one took its place.
    fn finished(&self, name: &Name) {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(name).is_some_and(|task| tokio::task::try_id() == Some(task.id())) {
            running.remove(name);
        }
    }

    /// Stops the endpoint's task, if one runs, and waits until it has (its instances are dropped with it).
    pub(crate) async fn stop(&self, name: &Name) {
        let task = self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

/// What CreateModel asks for.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: Name,
    /// `Image`: as a training job's `TrainingImage`.
    pub image: String,
    /// `ModelDataUrl`: a training job's `ModelArtifacts.S3ModelArtifacts`.
    pub model_data_url: String,
    /// The request as sent, echoed by DescribeModel.
    pub request: serde_json::Value,
}

/// A model: the registered version its name stands for, and the request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelResource {
    pub model_group: String,
    pub model_version: i64,
    pub request: serde_json::Value,
}

/// One production variant of an endpoint configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantSpec {
    pub variant: Name,
    pub model: Name,
    pub instances: u32,
    pub instance_type: Option<String>,
    pub weight: f64,
}

/// An endpoint configuration: its variants, and the request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointConfigResource {
    pub variants: Vec<VariantSpec>,
    pub request: serde_json::Value,
}

/// An endpoint's status as SageMaker names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointStatus {
    Creating,
    Updating,
    InService,
    Failed,
}

/// What is kept of an endpoint made through the control plane.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointResource {
    /// The configuration it serves, or is being moved to while `Updating`.
    pub config: String,
    pub status: EndpointStatus,
    /// Why the last create or update failed (an update that fails leaves the endpoint serving
    /// its configuration before, in service, as SageMaker does).
    pub failure_reason: Option<String>,
}

/// A resource's body, read back.
fn body<T: for<'de> Deserialize<'de>>(record: &ResourceRecord) -> Result<T> {
    serde_json::from_value(record.body.0.clone()).map_err(|e| {
        ServiceError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt_state",
            format!("{} cannot be read: {e}", record.name),
        )
    })
}

pub(super) fn to_body<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

pub(super) fn invalid(message: String) -> ServiceError {
    ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

pub(super) fn in_use(message: String) -> ServiceError {
    ServiceError::new(StatusCode::CONFLICT, "resource_in_use", message)
}

pub(super) fn not_found(what: &str, name: &Name) -> ServiceError {
    ServiceError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} {name}"))
}

impl Service {
    /// Registers the model a training job made as version 1 (or the next) of the group named
    /// after the model, served by `Image`.
    pub async fn create_model(&self, spec: &ModelSpec) -> Result<ModelVersionRecord> {
        let store = self.engine.store();
        if store.resource(ResourceKind::Model, &spec.name).await?.is_some() {
            return Err(in_use(format!("a model named {} exists already", spec.name)));
        }
        let lineage = json!({ "sagemaker_model": spec.name });
        let version = self
            .register_trained(&spec.name, &spec.image, &spec.model_data_url, ModelApprovalStatus::Approved, lineage)
            .await?;
        let resource = ModelResource {
            model_group: version.model_group.clone(),
            model_version: version.version,
            request: spec.request.clone(),
        };
        if !store.create_resource(ResourceKind::Model, &spec.name, &to_body(&resource)).await? {
            return Err(in_use(format!("a model named {} exists already", spec.name)));
        }
        Ok(version)
    }

    /// Registers the model a training job made at `model_data_url` as the next version of
    /// `group`, served by `image`, the job added to `lineage`.
    pub(crate) async fn register_trained(
        &self,
        group: &str,
        image: &str,
        model_data_url: &str,
        status: ModelApprovalStatus,
        mut lineage: serde_json::Value,
    ) -> Result<ModelVersionRecord> {
        let store = self.engine.store();
        let job = store.training_job_by_model(model_data_url).await?.ok_or_else(|| {
            invalid(format!(
                "ModelDataUrl {} is no model a training job here made: give a training job's \
                 ModelArtifacts.S3ModelArtifacts",
                names::excerpt(model_data_url, 200)
            ))
        })?;
        let algorithm = match image.strip_prefix("builtin:") {
            Some(_) => image.to_owned(),
            None => format!("image:{}", self.local_image(image).await?),
        };
        lineage["training_job"] = job.name.clone().into();
        lineage["image"] = image.into();
        Ok(store
            .register_model(NewModelVersion {
                model_group: group,
                run_id: job.run_id,
                algorithm: &algorithm,
                artifact_uri: model_data_url,
                artifact_sha256: job.model_sha256.as_deref().unwrap_or_default(),
                lineage: &lineage,
                approval_status: status,
            })
            .await?)
    }

    /// A kept resource of `kind` and its body, if there is one.
    async fn kept<T: for<'de> Deserialize<'de>>(
        &self,
        kind: ResourceKind,
        name: &Name,
    ) -> Result<Option<(ResourceRecord, T)>> {
        match self.engine.store().resource(kind, name).await? {
            Some(record) => {
                let kept = body(&record)?;
                Ok(Some((record, kept)))
            }
            None => Ok(None),
        }
    }

    /// Every kept resource of `kind`, the newest first, with its body.
    pub(super) async fn all_kept<T: for<'de> Deserialize<'de>>(
        &self,
        kind: ResourceKind,
    ) -> Result<Vec<(ResourceRecord, T)>> {
        let records = self.engine.store().resources(kind).await?;
        records.into_iter().map(|r| body(&r).map(|kept| (r, kept))).collect()
    }

    /// Removes a kept resource; `what` names it when there is none.
    async fn forget(&self, kind: ResourceKind, name: &Name, what: &str) -> Result<()> {
        if self.engine.store().delete_resource(kind, name).await? { Ok(()) } else { Err(not_found(what, name)) }
    }

    pub async fn sagemaker_model(&self, name: &Name) -> Result<(ResourceRecord, ModelResource)> {
        self.kept(ResourceKind::Model, name).await?.ok_or_else(|| not_found("model", name))
    }

    pub async fn sagemaker_models(&self) -> Result<Vec<(ResourceRecord, ModelResource)>> {
        self.all_kept(ResourceKind::Model).await
    }

    /// Forgets the model's name; its registered version stays, with what serves it.
    pub async fn delete_sagemaker_model(&self, name: &Name) -> Result<()> {
        self.forget(ResourceKind::Model, name, "model").await?;
        self.forget_tags(&format!("model/{name}")).await
    }

    /// Records an endpoint configuration whose models exist and whose instance types are known.
    pub async fn create_endpoint_config(&self, name: &Name, config: &EndpointConfigResource) -> Result<()> {
        if config.variants.is_empty() || config.variants.len() > 10 {
            return Err(invalid("an endpoint configuration has 1 to 10 production variants".to_owned()));
        }
        for (i, variant) in config.variants.iter().enumerate() {
            if config.variants[..i].iter().any(|v| v.variant == variant.variant) {
                return Err(invalid(format!("variant {} is named twice", variant.variant)));
            }
            if !(1..=16).contains(&variant.instances) {
                return Err(invalid(format!("variant {}: InitialInstanceCount is 1 to 16 here", variant.variant)));
            }
            if !(variant.weight >= 0.0 && variant.weight.is_finite()) {
                return Err(invalid(format!("variant {}: InitialVariantWeight is 0 or more", variant.variant)));
            }
            runtime::instance::limits(variant.instance_type.as_deref()).map_err(engine::Error::from)?;
            if self.engine.store().resource(ResourceKind::Model, &variant.model).await?.is_none() {
                return Err(invalid(format!("Could not find model \"{}\".", variant.model)));
            }
        }
        if !self.engine.store().create_resource(ResourceKind::EndpointConfig, name, &to_body(config)).await? {
            return Err(in_use(format!("an endpoint configuration named {name} exists already")));
        }
        Ok(())
    }

    pub async fn endpoint_config(&self, name: &Name) -> Result<(ResourceRecord, EndpointConfigResource)> {
        let what = "endpoint configuration";
        self.kept(ResourceKind::EndpointConfig, name).await?.ok_or_else(|| not_found(what, name))
    }

    pub async fn endpoint_configs(&self) -> Result<Vec<(ResourceRecord, EndpointConfigResource)>> {
        self.all_kept(ResourceKind::EndpointConfig).await
    }

    pub async fn delete_endpoint_config(&self, name: &Name) -> Result<()> {
        self.forget(ResourceKind::EndpointConfig, name, "endpoint configuration").await?;
        self.forget_tags(&format!("endpoint-config/{name}")).await
    }

    /// The SageMaker status kept of an endpoint the control plane made, if it made it.
    pub async fn endpoint_resource(&self, name: &Name) -> Result<Option<(ResourceRecord, EndpointResource)>> {
        self.kept(ResourceKind::Endpoint, name).await
    }

    /// Every endpoint the control plane made, with its SageMaker status.
    pub async fn endpoint_resources(&self) -> Result<Vec<(ResourceRecord, EndpointResource)>> {
        self.all_kept(ResourceKind::Endpoint).await
    }

    /// Starts deploying the configuration's variants to a new endpoint: `Creating` until they
    /// all serve, then `InService`, or `Failed` with the reason.
    pub async fn create_endpoint(&self, name: &Name, config: &Name) -> Result<()> {
        let (_, wanted) = self.endpoint_config(config).await?;
        if self.engine.store().endpoint(name).await?.is_some() {
            return Err(in_use(format!("an endpoint named {name} exists already")));
        }
        let resource =
            EndpointResource { config: config.to_string(), status: EndpointStatus::Creating, failure_reason: None };
        if !self.engine.store().create_resource(ResourceKind::Endpoint, name, &to_body(&resource)).await? {
            return Err(in_use(format!("an endpoint named {name} exists already")));
        }
        self.spawn_deploy(name.clone(), config.clone(), wanted, None);
        Ok(())
    }

    /// Starts moving an endpoint to another configuration: `Updating`, then `InService` on the
    /// new one, or on the old one with the reason when a variant cannot be deployed.
    pub async fn update_endpoint(&self, name: &Name, config: &Name) -> Result<()> {
        let (_, wanted) = self.endpoint_config(config).await?;
        let Some((_, current)) = self.endpoint_resource(name).await? else {
            return Err(not_found("endpoint made through SageMaker's API", name));
        };
        if matches!(current.status, EndpointStatus::Creating | EndpointStatus::Updating) {
            return Err(ServiceError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("endpoint {name} is {:?}: update it once it is in service", current.status),
            ));
        }
        let updating = EndpointResource { status: EndpointStatus::Updating, ..current.clone() };
        self.engine.store().update_resource(ResourceKind::Endpoint, name, &to_body(&updating)).await?;
        self.spawn_deploy(name.clone(), config.clone(), wanted, Some(current.config));
        Ok(())
    }

    /// Ends what a server that stopped left `Creating` or `Updating`: the task deploying it is
    /// gone, so a create is `Failed` and an update back `InService`, each saying to try again.
    /// Only on SQLite, where this is the home's one server: servers sharing Postgres may be
    /// deploying what another sees unfinished.
    pub(crate) async fn end_interrupted_endpoint_changes(&self) -> Result<()> {
        if self.engine.store().kind() != store::DatabaseKind::Sqlite {
            return Ok(());
        }
        for (record, resource) in self.endpoint_resources().await? {
            let ended = match resource.status {
                EndpointStatus::Creating => EndpointResource {
                    status: EndpointStatus::Failed,
                    failure_reason: Some(
                        "the server stopped while creating it: delete it and create it again".to_owned(),
                    ),
                    ..resource
                },
                EndpointStatus::Updating => EndpointResource {
                    status: EndpointStatus::InService,
                    failure_reason: Some("the server stopped during the update: update it again".to_owned()),
                    ..resource
                },
                EndpointStatus::InService | EndpointStatus::Failed => continue,
            };
            self.engine.store().update_resource(ResourceKind::Endpoint, &record.name, &to_body(&ended)).await?;
        }
        Ok(())
    }

    /// Forgets an endpoint's SageMaker status and tags (the endpoint itself is deleted apart).
    pub(crate) async fn forget_endpoint_resource(&self, name: &Name) -> Result<bool> {
        self.forget_tags(&format!("endpoint/{name}")).await?;
        Ok(self.engine.store().delete_resource(ResourceKind::Endpoint, name).await?)
    }

    fn spawn_deploy(&self, name: Name, config: Name, wanted: EndpointConfigResource, before: Option<String>) {
        let service = self.clone();
        let deploys = self.deploys.clone();
        deploys.start(name.clone(), async move {
            let deployed = service.deploy_variants(&name, &wanted).await;
            let resource = match (deployed, before) {
                (Ok(()), _) => EndpointResource {
                    config: config.to_string(),
                    status: EndpointStatus::InService,
                    failure_reason: None,
                },
                (Err(e), None) => EndpointResource {
                    config: config.to_string(),
                    status: EndpointStatus::Failed,
                    failure_reason: Some(e.message),
                },
                (Err(e), Some(before)) => EndpointResource {
                    config: before,
                    status: EndpointStatus::InService,
                    failure_reason: Some(e.message),
                },
            };
            match service.engine.store().update_resource(ResourceKind::Endpoint, &name, &to_body(&resource)).await {
                Ok(true) => {}
                // DeleteEndpoint came while this deployed: what it deployed goes too, or it would
                // serve with no SageMaker status to show or delete it by.
                Ok(false) => {
                    if let Err(e) = service.engine.delete_endpoint(&name).await {
                        tracing::warn!("endpoint {name}: deleted while deploying, but what it deployed stays: {e}");
                    }
                }
                Err(e) => tracing::warn!("endpoint {name}: its status could not be recorded: {e}"),
            }
            service.deploys.finished(&name);
        });
    }

    /// Deploys each variant in turn: the first replaces what the endpoint served (new instances
    /// answer before old ones stop), the others join it, then the weights are the configuration's.
    async fn deploy_variants(&self, endpoint: &Name, config: &EndpointConfigResource) -> Result<()> {
        for (i, variant) in config.variants.iter().enumerate() {
            let (_, model) = self.sagemaker_model(&variant.model).await?;
            let request = DeployRequest {
                model_group: model.model_group,
                model_version: Some(model.model_version),
                variant: Some(variant.variant.to_string()),
                weight: (i > 0).then_some(variant.weight),
                instances: Some(variant.instances),
                instance_type: variant.instance_type.clone(),
                ..DeployRequest::default()
            };
            self.deploy(endpoint, &request).await?;
        }
        if config.variants.len() > 1 {
            let weights = config.variants.iter().map(|v| (v.variant.to_string(), v.weight)).collect();
            self.set_weights(endpoint, &WeightsRequest { weights }).await?;
        }
        Ok(())
    }
}
