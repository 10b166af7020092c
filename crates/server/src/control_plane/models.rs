//! Models and endpoint configurations through SageMaker's API: Create, Describe, List and Delete
//! of each, over the service layer's hosting resources.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tags::{self, Tag};
use super::{Fault, arn, constraint, page, seconds, validation};
use crate::ServiceError;
use crate::service::{self, EndpointConfigResource, ModelSpec, Service, VariantSpec};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateModelInput {
    model_name: String,
    primary_container: Option<ContainerDefinition>,
    containers: Option<Vec<Value>>,
    execution_role_arn: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerDefinition {
    image: Option<String>,
    model_data_url: Option<String>,
    mode: Option<String>,
}

pub(super) async fn create_model(service: &Service, region: &str, input: CreateModelInput) -> Result<Value, Fault> {
    let name = service::name("model", &input.model_name).map_err(|e| constraint(&input.model_name, "modelName", &e))?;
    if input.containers.is_some() {
        return Err(validation("a model of several Containers is not taken here: give one PrimaryContainer"));
    }
    let container = input.primary_container.ok_or_else(|| validation("CreateModel needs a PrimaryContainer"))?;
    if container.mode.as_deref().is_some_and(|mode| mode != "SingleModel") {
        return Err(validation(
            "PrimaryContainer.Mode MultiModel is not taken here; deploy a multi_model stage instead",
        ));
    }
    let (Some(image), Some(model_data_url)) = (container.image, container.model_data_url) else {
        return Err(validation("PrimaryContainer needs an Image and a ModelDataUrl"));
    };
    let request = json!({
        "PrimaryContainer": { "Image": image, "ModelDataUrl": model_data_url, "Mode": "SingleModel" },
        "ExecutionRoleArn": input.execution_role_arn,
    });
    let tags = tags::given(&input.tags)?;
    let spec = ModelSpec { name: name.clone(), image, model_data_url, request };
    service.create_model(&spec).await.map_err(|e| exists(e, "model", &arn(region, "model", &name)))?;
    tags::keep(service, &format!("model/{name}"), &tags).await?;
    Ok(json!({ "ModelArn": arn(region, "model", &name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ModelInput {
    model_name: String,
}

pub(super) async fn describe_model(service: &Service, region: &str, input: ModelInput) -> Result<Value, Fault> {
    let name = service::name("model", &input.model_name).map_err(|e| constraint(&input.model_name, "modelName", &e))?;
    let (record, model) =
        service.sagemaker_model(&name).await.map_err(|e| missing(e, "model", &arn(region, "model", &name)))?;
    let mut output = json!({
        "ModelName": name,
        "ModelArn": arn(region, "model", &name),
        "CreationTime": seconds(record.created_at),
        "EnableNetworkIsolation": false,
    });
    for field in ["PrimaryContainer", "ExecutionRoleArn"] {
        if let Some(value) = model.request.get(field).filter(|v| !v.is_null()) {
            output[field] = value.clone();
        }
    }
    Ok(output)
}

pub(super) async fn delete_model(service: &Service, region: &str, input: ModelInput) -> Result<Value, Fault> {
    let name = service::name("model", &input.model_name).map_err(|e| constraint(&input.model_name, "modelName", &e))?;
    service.delete_sagemaker_model(&name).await.map_err(|e| missing(e, "model", &arn(region, "model", &name)))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInput {
    name_contains: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ModelSummary {
    model_name: String,
    model_arn: String,
    creation_time: f64,
}

pub(super) async fn list_models(service: &Service, region: &str, input: ListInput) -> Result<Value, Fault> {
    let summaries: Vec<ModelSummary> = service
        .sagemaker_models()
        .await?
        .into_iter()
        .filter(|(r, _)| input.name_contains.as_deref().is_none_or(|part| r.name.contains(part)))
        .map(|(r, _)| ModelSummary {
            model_arn: arn(region, "model", &r.name),
            creation_time: seconds(r.created_at),
            model_name: r.name,
        })
        .collect();
    listed("Models", &summaries, &input)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateConfigInput {
    endpoint_config_name: String,
    production_variants: Vec<ProductionVariant>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProductionVariant {
    variant_name: String,
    model_name: Option<String>,
    initial_instance_count: Option<u32>,
    instance_type: Option<String>,
    initial_variant_weight: Option<f64>,
}

pub(super) async fn create_config(service: &Service, region: &str, input: CreateConfigInput) -> Result<Value, Fault> {
    let name = config_name(&input.endpoint_config_name)?;
    let tags = tags::given(&input.tags)?;
    let mut variants = Vec::new();
    for variant in &input.production_variants {
        let model = variant
            .model_name
            .as_deref()
            .ok_or_else(|| validation(format!("variant {}: give its ModelName", variant.variant_name)))?;
        variants.push(VariantSpec {
            variant: service::name("variant", &variant.variant_name)
                .map_err(|e| constraint(&variant.variant_name, "variantName", &e))?,
            model: service::name("model", model).map_err(|e| constraint(model, "modelName", &e))?,
            instances: variant.initial_instance_count.unwrap_or(1),
            instance_type: variant.instance_type.clone(),
            weight: variant.initial_variant_weight.unwrap_or(1.0),
        });
    }
    let request = json!({ "ProductionVariants": input.production_variants });
    let config = EndpointConfigResource { variants, request };
    let config_arn = arn(region, "endpoint-config", &name);
    service
        .create_endpoint_config(&name, &config)
        .await
        .map_err(|e| exists(e, "endpoint configuration", &config_arn))?;
    tags::keep(service, &format!("endpoint-config/{name}"), &tags).await?;
    Ok(json!({ "EndpointConfigArn": config_arn }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ConfigInput {
    endpoint_config_name: String,
}

pub(super) async fn describe_config(service: &Service, region: &str, input: ConfigInput) -> Result<Value, Fault> {
    let name = config_name(&input.endpoint_config_name)?;
    let config_arn = arn(region, "endpoint-config", &name);
    let (record, config) =
        service.endpoint_config(&name).await.map_err(|e| missing(e, "endpoint configuration", &config_arn))?;
    let variants: Vec<Value> = config
        .variants
        .iter()
        .map(|v| {
            json!({
                "VariantName": v.variant,
                "ModelName": v.model,
                "InitialInstanceCount": v.instances,
                "InstanceType": v.instance_type.as_deref().unwrap_or(runtime::instance::DEFAULT_INSTANCE_TYPE),
                "InitialVariantWeight": v.weight,
            })
        })
        .collect();
    Ok(json!({
        "EndpointConfigName": name,
        "EndpointConfigArn": config_arn,
        "ProductionVariants": variants,
        "CreationTime": seconds(record.created_at),
    }))
}

pub(super) async fn delete_config(service: &Service, region: &str, input: ConfigInput) -> Result<Value, Fault> {
    let name = config_name(&input.endpoint_config_name)?;
    let config_arn = arn(region, "endpoint-config", &name);
    service.delete_endpoint_config(&name).await.map_err(|e| missing(e, "endpoint configuration", &config_arn))?;
    Ok(json!({}))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigSummary {
    endpoint_config_name: String,
    endpoint_config_arn: String,
    creation_time: f64,
}

pub(super) async fn list_configs(service: &Service, region: &str, input: ListInput) -> Result<Value, Fault> {
    let summaries: Vec<ConfigSummary> = service
        .endpoint_configs()
        .await?
        .into_iter()
        .filter(|(r, _)| input.name_contains.as_deref().is_none_or(|part| r.name.contains(part)))
        .map(|(r, _)| ConfigSummary {
            endpoint_config_arn: arn(region, "endpoint-config", &r.name),
            creation_time: seconds(r.created_at),
            endpoint_config_name: r.name,
        })
        .collect();
    listed("EndpointConfigs", &summaries, &input)
}

fn listed<T: Serialize>(key: &str, summaries: &[T], input: &ListInput) -> Result<Value, Fault> {
    let (page, next) = page(summaries, input.max_results, input.next_token.as_deref())?;
    let mut output = json!({ key: page });
    if let Some(next) = next {
        output["NextToken"] = next.into();
    }
    Ok(output)
}

pub(super) fn config_name(text: &str) -> Result<names::Name, Fault> {
    service::name("endpoint configuration", text).map_err(|e| constraint(text, "endpointConfigName", &e))
}

/// SageMaker's words for a name in use: `Cannot create already existing model "<arn>".`
pub(super) fn exists(e: ServiceError, what: &str, arn: &str) -> Fault {
    if e.code == "resource_in_use" {
        validation(format!("Cannot create already existing {what} \"{arn}\"."))
    } else {
        missing(e, what, arn)
    }
}

/// SageMaker's words for a missing resource: `Could not find model "<arn>".`
pub(super) fn missing(e: ServiceError, what: &str, arn: &str) -> Fault {
    if e.status == axum::http::StatusCode::NOT_FOUND {
        validation(format!("Could not find {what} \"{arn}\"."))
    } else {
        Fault::from(e)
    }
}
