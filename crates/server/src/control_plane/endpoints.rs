//! Endpoints through SageMaker's API: CreateEndpoint, UpdateEndpoint, DescribeEndpoint,
//! ListEndpoints, DeleteEndpoint and UpdateEndpointWeightsAndCapacities over the service layer's
//! endpoints, with the status the service keeps of those made here.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::models::{config_name, exists, missing};
use super::tags::{self, Tag};
use super::{Fault, arn, constraint, seconds, validation};
use crate::ServiceError;
use crate::service::{self, EndpointResource, EndpointStatus, EndpointView, Service, WeightsRequest};

/// An endpoint as SageMaker shows it: what this server serves (`view`), what the control plane
/// keeps of it (`resource`), or both.
struct Shown {
    name: String,
    view: Option<EndpointView>,
    resource: Option<(store::ResourceRecord, EndpointResource)>,
}

impl Shown {
    /// The resource's status; else (an endpoint deployed by a pipeline) in service when this
    /// server serves it, and out of service when it is only recorded (served by another server
    /// on the same database, or not restored).
    fn status(&self) -> &'static str {
        let serving = self.view.as_ref().is_some_and(|v| v.url.is_some());
        match self.resource.as_ref().map(|(_, r)| r.status) {
            Some(EndpointStatus::Creating) => "Creating",
            Some(EndpointStatus::Updating) => "Updating",
            Some(EndpointStatus::Failed) => "Failed",
            Some(EndpointStatus::InService) | None if serving => "InService",
            Some(EndpointStatus::InService) | None => "OutOfService",
        }
    }

    fn created_ms(&self) -> i64 {
        match (&self.resource, &self.view) {
            (Some((record, _)), _) => record.created_at,
            (None, Some(view)) => view.record.updated_at,
            (None, None) => 0,
        }
    }

    fn modified_ms(&self) -> i64 {
        let resource = self.resource.as_ref().map(|(record, _)| record.updated_at);
        let view = self.view.as_ref().map(|v| v.record.updated_at);
        resource.max(view).unwrap_or_default()
    }
}

async fn shown(service: &Service, name: &names::Name) -> Result<Option<Shown>, Fault> {
    let view = match service.endpoint(name).await {
        Ok(view) => Some(view),
        Err(e) if e.status == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e.into()),
    };
    let resource = service.endpoint_resource(name).await?;
    Ok((view.is_some() || resource.is_some()).then(|| Shown { name: name.to_string(), view, resource }))
}

/// Whether DescribeEndpoint would find it: served here, or made through this API.
pub(super) async fn known(service: &Service, name: &names::Name) -> Result<bool, Fault> {
    Ok(shown(service, name).await?.is_some())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListEndpointsInput {
    name_contains: Option<String>,
    status_equals: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointSummary {
    endpoint_name: String,
    endpoint_arn: String,
    creation_time: f64,
    last_modified_time: f64,
    endpoint_status: &'static str,
}

pub(super) async fn list(service: &Service, region: &str, input: ListEndpointsInput) -> Result<Value, Fault> {
    let mut all: BTreeMap<String, Shown> = BTreeMap::new();
    for view in service.endpoints().await? {
        let name = view.record.name.clone();
        all.insert(name.clone(), Shown { name, view: Some(view), resource: None });
    }
    for (record, resource) in service.endpoint_resources().await? {
        let name = record.name.clone();
        all.entry(name.clone()).or_insert_with(|| Shown { name, view: None, resource: None }).resource =
            Some((record, resource));
    }
    let mut shown: Vec<Shown> = all.into_values().collect();
    // SageMaker's default order: the newest first.
    shown.sort_by_key(|s| std::cmp::Reverse(s.created_ms()));
    let summaries: Vec<EndpointSummary> = shown
        .iter()
        .filter(|s| input.name_contains.as_deref().is_none_or(|part| s.name.contains(part)))
        .filter(|s| input.status_equals.as_deref().is_none_or(|status| status == s.status()))
        .map(|s| EndpointSummary {
            endpoint_name: s.name.clone(),
            endpoint_arn: arn(region, "endpoint", &s.name),
            creation_time: seconds(s.created_ms()),
            last_modified_time: seconds(s.modified_ms()),
            endpoint_status: s.status(),
        })
        .collect();
    let (page, next) = super::page(&summaries, input.max_results, input.next_token.as_deref())?;
    let mut output = json!({ "Endpoints": page });
    if let Some(next) = next {
        output["NextToken"] = Value::String(next);
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EndpointInput {
    endpoint_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProductionVariantSummary {
    variant_name: String,
    current_weight: f64,
    desired_weight: f64,
    current_instance_count: usize,
    desired_instance_count: usize,
}

pub(super) async fn describe(service: &Service, region: &str, input: EndpointInput) -> Result<Value, Fault> {
    let name = endpoint_name(&input.endpoint_name)?;
    let shown = shown(service, &name).await?.ok_or_else(|| no_endpoint(region, &name))?;
    let variants: Vec<ProductionVariantSummary> = shown
        .view
        .iter()
        .flat_map(|view| &view.variants)
        .map(|v| ProductionVariantSummary {
            variant_name: v.name.clone(),
            current_weight: v.weight,
            desired_weight: v.weight,
            current_instance_count: v.instances,
            desired_instance_count: v.instances,
        })
        .collect();
    let mut output = json!({
        "EndpointName": name,
        "EndpointArn": arn(region, "endpoint", &name),
        // An endpoint a pipeline deployed has no configuration apart from itself.
        "EndpointConfigName": shown.resource.as_ref().map_or(name.as_str(), |(_, r)| r.config.as_str()),
        "ProductionVariants": variants,
        "EndpointStatus": shown.status(),
        "CreationTime": seconds(shown.created_ms()),
        "LastModifiedTime": seconds(shown.modified_ms()),
    });
    if let Some(reason) = shown.resource.as_ref().and_then(|(_, r)| r.failure_reason.as_deref()) {
        output["FailureReason"] = reason.into();
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateEndpointInput {
    endpoint_name: String,
    endpoint_config_name: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub(super) async fn create(service: &Service, region: &str, input: CreateEndpointInput) -> Result<Value, Fault> {
    let name = endpoint_name(&input.endpoint_name)?;
    let config = config_name(&input.endpoint_config_name)?;
    let tags = tags::given(&input.tags)?;
    let endpoint_arn = arn(region, "endpoint", &name);
    service.create_endpoint(&name, &config).await.map_err(|e| match e.code.as_ref() {
        "resource_in_use" => exists(e, "endpoint", &endpoint_arn),
        _ => missing(e, "endpoint configuration", &arn(region, "endpoint-config", &config)),
    })?;
    tags::keep(service, &format!("endpoint/{name}"), &tags).await?;
    Ok(json!({ "EndpointArn": endpoint_arn }))
}

pub(super) async fn update(service: &Service, region: &str, input: CreateEndpointInput) -> Result<Value, Fault> {
    let name = endpoint_name(&input.endpoint_name)?;
    let config = config_name(&input.endpoint_config_name)?;
    if service.endpoint_config(&config).await.is_err() {
        return Err(validation(format!(
            "Could not find endpoint configuration \"{}\".",
            arn(region, "endpoint-config", &config)
        )));
    }
    service.update_endpoint(&name, &config).await.map_err(|e| not_found(e, region, &input.endpoint_name))?;
    Ok(json!({ "EndpointArn": arn(region, "endpoint", &name) }))
}

pub(super) async fn delete(service: &Service, region: &str, input: EndpointInput) -> Result<Value, Fault> {
    let name = endpoint_name(&input.endpoint_name)?;
    service.delete_endpoint(&name).await.map_err(|e| not_found(e, region, &input.endpoint_name))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateWeightsInput {
    endpoint_name: String,
    desired_weights_and_capacities: Vec<DesiredWeightAndCapacity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DesiredWeightAndCapacity {
    variant_name: String,
    desired_weight: Option<f64>,
    desired_instance_count: Option<u32>,
}

pub(super) async fn update_weights(service: &Service, region: &str, input: UpdateWeightsInput) -> Result<Value, Fault> {
    let name = endpoint_name(&input.endpoint_name)?;
    let current = service.endpoint(&name).await.map_err(|e| not_found(e, region, &input.endpoint_name))?;
    let mut request = WeightsRequest::default();
    for desired in &input.desired_weights_and_capacities {
        let Some(variant) = current.variants.iter().find(|v| v.name == desired.variant_name) else {
            return Err(validation(format!(
                "The variant(s) \"[{}]\" is/are not present in the endpoint {name}.",
                desired.variant_name
            )));
        };
        if desired.desired_instance_count.is_some_and(|count| count as usize != variant.instances) {
            return Err(validation(format!(
                "sagebrush does not change a variant's instance count in place; deploy {name} again with `instances`"
            )));
        }
        if let Some(weight) = desired.desired_weight {
            request.weights.insert(desired.variant_name.clone(), weight);
        }
    }
    if !request.weights.is_empty() {
        service.set_weights(&name, &request).await?;
    }
    Ok(serde_json::json!({ "EndpointArn": arn(region, "endpoint", &name) }))
}

fn endpoint_name(text: &str) -> Result<names::Name, Fault> {
    service::name("endpoint", text).map_err(|e| constraint(text, "endpointName", &e))
}

fn no_endpoint(region: &str, name: &str) -> Fault {
    validation(format!("Could not find endpoint \"{}\".", arn(region, "endpoint", name)))
}

/// SageMaker answers a missing endpoint with a ValidationException (its `endpoint-deleted` waiter counts on it).
fn not_found(e: ServiceError, region: &str, name: &str) -> Fault {
    if e.status == StatusCode::NOT_FOUND { no_endpoint(region, name) } else { Fault::from(e) }
}
