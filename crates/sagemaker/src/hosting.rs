//! Endpoints: a SageMaker model per model version (`CreateModel`, shared by endpoints), an
//! endpoint configuration per deploy (`<endpoint>-<millis>`), then `CreateEndpoint`, or
//! `UpdateEndpoint` with a blue/green `DeploymentConfig` for canary or linear traffic and rollback
//! alarms, followed with `DescribeEndpoint` until it is in service or the deadline passes. After
//! a deploy or a delete, the configurations of this endpoint and the models that no endpoint uses
//! any more are deleted. Requests go through sagemaker-runtime's `InvokeEndpoint`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType, ContainerDefinition,
    DeploymentConfig, EndpointStatus, ProductionVariant, ProductionVariantInstanceType, TrafficRoutingConfig,
    TrafficRoutingConfigType,
};
use engine::{Hosted, ManagedEndpoint, ManagedError, ManagedHosting};
use futures::future::BoxFuture;
use pipeline::Traffic;
use tokio::io::AsyncWrite;

use crate::training::write;
use crate::{Error, Polling, SageMaker, known};

/// How long a deleted endpoint may take to go before what it used is removed.
const DELETE_DEADLINE: Duration = Duration::from_secs(10 * 60);

impl ManagedHosting for SageMaker {
    fn check_instance_type(&self, instance_type: &str) -> Result<(), String> {
        known(ProductionVariantInstanceType::values(), instance_type, "hosting")
    }

    fn deploy<'a>(
        &'a self,
        endpoint: &'a ManagedEndpoint,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<Hosted, ManagedError>> {
        Box::pin(async move { Ok(self.host(endpoint, log).await?) })
    }

    fn invoke<'a>(
        &'a self,
        endpoint: &'a str,
        region: Option<&'a str>,
        content_type: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, ManagedError>> {
        Box::pin(async move { Ok(self.ask(endpoint, region, content_type, body).await?) })
    }

    fn serves<'a>(
        &'a self,
        endpoint: &'a str,
        region: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, ManagedError>> {
        Box::pin(async move {
            let client = self.client(region).await?;
            let described = describe(&client, endpoint).await?;
            Ok(described.and_then(|d| d.endpoint_config_name().map(str::to_owned)))
        })
    }

    fn delete<'a>(&'a self, endpoint: &'a str, region: Option<&'a str>) -> BoxFuture<'a, Result<(), ManagedError>> {
        Box::pin(async move { Ok(self.remove(endpoint, region).await?) })
    }
}

impl SageMaker {
    async fn host(&self, wanted: &ManagedEndpoint, log: &mut (dyn AsyncWrite + Unpin + Send)) -> Result<Hosted, Error> {
        let client = self.client(wanted.settings.region.as_deref()).await?;
        ensure_model(&client, wanted, log).await?;
        let current = describe(&client, &wanted.endpoint).await?;
        if let Some(current) = &current
            && current.endpoint_status() != Some(&EndpointStatus::InService)
        {
            let status = current.endpoint_status().map_or("of no status", EndpointStatus::as_str);
            return Err(Error::Endpoint {
                endpoint: wanted.endpoint.clone(),
                why: format!("is {status}, and SageMaker updates only an endpoint in service; try again when it is"),
            });
        }
        let config = config_name(&wanted.endpoint);
        let variants = variants(&client, wanted, current.as_ref()).await?;
        client
            .create_endpoint_config()
            .endpoint_config_name(&config)
            .set_production_variants(Some(variants))
            .send()
            .await
            .map_err(|e| Error::of("CreateEndpointConfig", e))?;
        write(log, &format!("created endpoint configuration {config}")).await;
        let arn = match &current {
            None => {
                let created = client
                    .create_endpoint()
                    .endpoint_name(&wanted.endpoint)
                    .endpoint_config_name(&config)
                    .send()
                    .await
                    .map_err(|e| Error::of("CreateEndpoint", e))?;
                write(log, &format!("creating endpoint {}", wanted.endpoint)).await;
                created.endpoint_arn().unwrap_or(&wanted.endpoint).to_owned()
            }
            Some(current) => {
                let updated = client
                    .update_endpoint()
                    .endpoint_name(&wanted.endpoint)
                    .endpoint_config_name(&config)
                    .set_deployment_config(deployment_config(wanted))
                    .send()
                    .await
                    .map_err(|e| Error::of("UpdateEndpoint", e))?;
                let from = current.endpoint_config_name().unwrap_or("its configuration");
                write(log, &format!("updating endpoint {} from {from} ({})", wanted.endpoint, traffic(wanted))).await;
                updated.endpoint_arn().unwrap_or(&wanted.endpoint).to_owned()
            }
        };
        let served = self.wait_in_service(&client, wanted, current.is_none(), log).await?;
        if let Err(e) = remove_unused(&client, &wanted.endpoint, log).await {
            write(log, &format!("removing unused configurations and models: {e}")).await;
        }
        let hosted = match served.config {
            // In service on another configuration: SageMaker rolled the update back.
            Some(other) if other != config => Hosted::RolledBack {
                arn,
                config: other,
                reason: served.failure_reason.unwrap_or_else(|| "a rollback alarm went off during the update".into()),
            },
            _ => Hosted::InService { arn, config },
        };
        Ok(hosted)
    }

    /// Describes the endpoint until it is in service, fails, or the deadline passes; an endpoint
    /// this deploy created is deleted when it did not come up, so the name is free for the next.
    async fn wait_in_service(
        &self,
        client: &Client,
        wanted: &ManagedEndpoint,
        created: bool,
        log: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<Served, Error> {
        let started = Instant::now();
        let endpoint = &wanted.endpoint;
        let mut wait = self.polling.first;
        let mut last = None;
        loop {
            let Some(described) = describe(client, endpoint).await? else {
                return Err(Error::Endpoint {
                    endpoint: endpoint.clone(),
                    why: "was deleted while it deployed".into(),
                });
            };
            let status = described.endpoint_status().cloned();
            let said = status.as_ref().map_or("of no status", EndpointStatus::as_str).to_owned();
            if last != status {
                write(log, &format!("endpoint {endpoint}: {said}")).await;
                last = status.clone();
            }
            let reason = described.failure_reason().map(str::to_owned);
            match status {
                Some(EndpointStatus::InService) => {
                    let config = described.endpoint_config_name().map(str::to_owned);
                    return Ok(Served { config, failure_reason: reason });
                }
                Some(EndpointStatus::Failed | EndpointStatus::UpdateRollbackFailed | EndpointStatus::OutOfService) => {
                    let mut why = format!("is {said}: {}", reason.as_deref().unwrap_or("SageMaker gave no reason"));
                    if created {
                        why.push_str(&self.give_up(client, endpoint, log).await);
                    }
                    return Err(Error::Endpoint { endpoint: endpoint.clone(), why });
                }
                _ => {}
            }
            let left = wanted.deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                let mut why =
                    format!("was still {said} after {}s, the stage's deadline", wanted.deadline.as_secs_f64());
                if created {
                    why.push_str(&self.give_up(client, endpoint, log).await);
                } else {
                    why.push_str("; SageMaker goes on with the update (see DescribeEndpoint)");
                }
                return Err(Error::Endpoint { endpoint: endpoint.clone(), why });
            }
            tokio::time::sleep(Polling::jittered(wait).min(left)).await;
            wait = self.polling.next(wait);
        }
    }

    /// Deletes an endpoint that did not come up; what to add to the reason.
    async fn give_up(&self, client: &Client, endpoint: &str, log: &mut (dyn AsyncWrite + Unpin + Send)) -> String {
        match client.delete_endpoint().endpoint_name(endpoint).send().await {
            Ok(_) => {
                write(log, &format!("deleted endpoint {endpoint}")).await;
                "; it was deleted".to_owned()
            }
            Err(e) => format!("; deleting it failed too: {}", Error::of("DeleteEndpoint", e)),
        }
    }

    async fn ask(
        &self,
        endpoint: &str,
        region: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let client = aws_sdk_sagemakerruntime::Client::new(&self.config(region).await?);
        let answer = client
            .invoke_endpoint()
            .endpoint_name(endpoint)
            .content_type(content_type)
            .accept(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| Error::of("InvokeEndpoint", e))?;
        Ok(answer.body.map(|b| b.into_inner()).unwrap_or_default())
    }

    /// Deletes the endpoint, waits until it is gone, then removes what only it used.
    async fn remove(&self, endpoint: &str, region: Option<&str>) -> Result<(), Error> {
        let client = self.client(region).await?;
        if describe(&client, endpoint).await?.is_some() {
            client
                .delete_endpoint()
                .endpoint_name(endpoint)
                .send()
                .await
                .map_err(|e| Error::of("DeleteEndpoint", e))?;
            let started = Instant::now();
            let mut wait = self.polling.first;
            while describe(&client, endpoint).await?.is_some() {
                if started.elapsed() > DELETE_DEADLINE {
                    return Err(Error::Endpoint {
                        endpoint: endpoint.to_owned(),
                        why: "was still deleting after 10 minutes; its configurations and models were kept".into(),
                    });
                }
                tokio::time::sleep(Polling::jittered(wait)).await;
                wait = self.polling.next(wait);
            }
        }
        remove_unused(&client, endpoint, &mut tokio::io::sink()).await
    }
}

/// What an endpoint in service serves.
struct Served {
    config: Option<String>,
    failure_reason: Option<String>,
}

/// `None` when SageMaker has no such endpoint.
async fn describe(client: &Client, endpoint: &str) -> Result<Option<DescribeEndpointOutput>, Error> {
    match client.describe_endpoint().endpoint_name(endpoint).send().await {
        Ok(described) => Ok(Some(described)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(Error::of("DescribeEndpoint", e)),
    }
}

/// SageMaker answers a Describe of what does not exist with a `ValidationException` "Could not find ...".
fn not_found<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationException") && e.message().is_some_and(|m| m.contains("Could not find"))
    })
}

/// Creates the version's model unless it exists; one that exists must hold the same model.
async fn ensure_model(
    client: &Client,
    wanted: &ManagedEndpoint,
    log: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(), Error> {
    match client.describe_model().model_name(&wanted.model).send().await {
        Ok(model) => {
            let holds = model.primary_container().and_then(|c| c.model_data_url());
            if holds != Some(wanted.model_uri.as_str()) {
                return Err(Error::Service {
                    api: crate::Api::SageMaker,
                    operation: "CreateModel",
                    code: "ModelExists".into(),
                    message: format!(
                        "a model named {} exists with model data {}, not {}; delete it (aws sagemaker delete-model \
                         --model-name {}) or register the version in another model group",
                        wanted.model,
                        holds.unwrap_or("of its own"),
                        wanted.model_uri,
                        wanted.model
                    ),
                });
            }
            Ok(())
        }
        Err(e) if not_found(&e) => {
            client
                .create_model()
                .model_name(&wanted.model)
                .primary_container(
                    ContainerDefinition::builder().image(&wanted.image).model_data_url(&wanted.model_uri).build(),
                )
                .execution_role_arn(&wanted.settings.role)
                .send()
                .await
                .map_err(|e| Error::of("CreateModel", e))?;
            write(log, &format!("created model {} ({} with {})", wanted.model, wanted.image, wanted.model_uri)).await;
            Ok(())
        }
        Err(e) => Err(Error::of("DescribeModel", e)),
    }
}

/// The new configuration's variants: the stage's alone, or, for an A/B deploy of an endpoint in
/// service, the current configuration's others beside it.
async fn variants(
    client: &Client,
    wanted: &ManagedEndpoint,
    current: Option<&DescribeEndpointOutput>,
) -> Result<Vec<ProductionVariant>, Error> {
    let mut variants = Vec::new();
    if let (Some(_), Some(config)) = (wanted.weight, current.and_then(|c| c.endpoint_config_name())) {
        let described = client
            .describe_endpoint_config()
            .endpoint_config_name(config)
            .send()
            .await
            .map_err(|e| Error::of("DescribeEndpointConfig", e))?;
        let others = described.production_variants().iter().filter(|v| v.variant_name() != Some(&wanted.variant));
        variants.extend(others.cloned());
    }
    variants.push(
        ProductionVariant::builder()
            .variant_name(&wanted.variant)
            .model_name(&wanted.model)
            .initial_instance_count(i32::try_from(wanted.instances).unwrap_or(i32::MAX))
            .instance_type(ProductionVariantInstanceType::from(wanted.instance_type.as_str()))
            .initial_variant_weight(wanted.weight.unwrap_or(1.0) as f32)
            .build(),
    );
    Ok(variants)
}

/// `<endpoint>-<millis>`, within SageMaker's 63 characters.
fn config_name(endpoint: &str) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    format!("{}-{millis}", config_prefix(endpoint))
}

fn config_prefix(endpoint: &str) -> &str {
    let end = endpoint.char_indices().nth(49).map_or(endpoint.len(), |(i, _)| i);
    endpoint[..end].trim_end_matches('-')
}

/// Whether a configuration is one of this endpoint's, as [`config_name`] names them.
fn is_ours(config: &str, endpoint: &str) -> bool {
    config
        .strip_prefix(config_prefix(endpoint))
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|millis| !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()))
}

/// The blue/green policy of an update, when the stage steps traffic or names rollback alarms;
/// otherwise SageMaker's own (all at once, no alarms).
fn deployment_config(wanted: &ManagedEndpoint) -> Option<DeploymentConfig> {
    if wanted.traffic == Traffic::AllAtOnce && wanted.settings.alarms.is_empty() {
        return None;
    }
    let capacity = |percent: f64| {
        CapacitySize::builder().r#type(CapacitySizeType::CapacityPercent).value(percent.round() as i32).build()
    };
    let bake = i32::try_from(wanted.bake.as_secs()).unwrap_or(i32::MAX).min(3600);
    let routing = TrafficRoutingConfig::builder().wait_interval_in_seconds(bake);
    let routing = match wanted.traffic {
        Traffic::AllAtOnce => routing.r#type(TrafficRoutingConfigType::AllAtOnce),
        Traffic::Canary { percent } => routing.r#type(TrafficRoutingConfigType::Canary).canary_size(capacity(percent)),
        Traffic::Linear { percent } => {
            routing.r#type(TrafficRoutingConfigType::Linear).linear_step_size(capacity(percent))
        }
    };
    let policy = BlueGreenUpdatePolicy::builder()
        .traffic_routing_configuration(routing.build())
        .termination_wait_in_seconds(bake);
    let alarms: Vec<Alarm> = wanted.settings.alarms.iter().map(|a| Alarm::builder().alarm_name(a).build()).collect();
    let rollback = (!alarms.is_empty()).then(|| AutoRollbackConfig::builder().set_alarms(Some(alarms)).build());
    Some(
        DeploymentConfig::builder()
            .blue_green_update_policy(policy.build())
            .set_auto_rollback_configuration(rollback)
            .build(),
    )
}

fn traffic(wanted: &ManagedEndpoint) -> String {
    let alarms = match wanted.settings.alarms.as_slice() {
        [] => String::new(),
        alarms => format!(", rolled back on {}", alarms.join(", ")),
    };
    let steps = match wanted.traffic {
        Traffic::AllAtOnce => "all traffic at once".to_owned(),
        Traffic::Canary { percent } => format!("canary {percent}%, then the rest after {}s", wanted.bake.as_secs()),
        Traffic::Linear { percent } => format!("{percent}% more every {}s", wanted.bake.as_secs()),
    };
    steps + &alarms
}

/// Deletes this endpoint's configurations that no endpoint serves, then the models they named
/// that no endpoint's configuration names.
async fn remove_unused(
    client: &Client,
    endpoint: &str,
    log: &mut (dyn AsyncWrite + Unpin + Send),
) -> Result<(), Error> {
    let endpoints: Vec<_> = client
        .list_endpoints()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| Error::of("ListEndpoints", e))?;
    let mut used_configs = BTreeSet::new();
    for summary in &endpoints {
        if let Some(name) = summary.endpoint_name()
            && let Some(described) = describe(client, name).await?
            && let Some(config) = described.endpoint_config_name()
        {
            used_configs.insert(config.to_owned());
        }
    }
    let mut used_models = BTreeSet::new();
    for config in &used_configs {
        used_models.extend(models_of(client, config).await?);
    }
    let ours: Vec<String> = client
        .list_endpoint_configs()
        .name_contains(config_prefix(endpoint))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| Error::of("ListEndpointConfigs", e))?
        .into_iter()
        .filter_map(|c| c.endpoint_config_name().map(str::to_owned))
        .filter(|c| is_ours(c, endpoint) && !used_configs.contains(c))
        .collect();
    let mut unused_models = BTreeSet::new();
    for config in &ours {
        unused_models.extend(models_of(client, config).await?);
        client
            .delete_endpoint_config()
            .endpoint_config_name(config)
            .send()
            .await
            .map_err(|e| Error::of("DeleteEndpointConfig", e))?;
        write(log, &format!("deleted endpoint configuration {config}, which no endpoint serves")).await;
    }
    for model in unused_models.difference(&used_models) {
        client.delete_model().model_name(model).send().await.map_err(|e| Error::of("DeleteModel", e))?;
        write(log, &format!("deleted model {model}, which no endpoint serves")).await;
    }
    Ok(())
}

async fn models_of(client: &Client, config: &str) -> Result<Vec<String>, Error> {
    let described = client
        .describe_endpoint_config()
        .endpoint_config_name(config)
        .send()
        .await
        .map_err(|e| Error::of("DescribeEndpointConfig", e))?;
    Ok(described.production_variants().iter().filter_map(|v| v.model_name().map(str::to_owned)).collect())
}

#[cfg(test)]
mod tests {
    //! What moto does not do (UpdateEndpoint, an endpoint that stays Creating, a rollback): the
    //! SDK's own mocks answer as SageMaker does.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use aws_sdk_sagemaker::error::ErrorMetadata;
    use aws_sdk_sagemaker::operation::create_endpoint::CreateEndpointOutput;
    use aws_sdk_sagemaker::operation::create_endpoint_config::CreateEndpointConfigOutput;
    use aws_sdk_sagemaker::operation::create_model::CreateModelOutput;
    use aws_sdk_sagemaker::operation::delete_endpoint::DeleteEndpointOutput;
    use aws_sdk_sagemaker::operation::delete_endpoint_config::DeleteEndpointConfigOutput;
    use aws_sdk_sagemaker::operation::delete_model::DeleteModelOutput;
    use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointError;
    use aws_sdk_sagemaker::operation::describe_endpoint_config::DescribeEndpointConfigOutput;
    use aws_sdk_sagemaker::operation::describe_model::{DescribeModelError, DescribeModelOutput};
    use aws_sdk_sagemaker::operation::list_endpoint_configs::ListEndpointConfigsOutput;
    use aws_sdk_sagemaker::operation::list_endpoints::ListEndpointsOutput;
    use aws_sdk_sagemaker::operation::update_endpoint::UpdateEndpointOutput;
    use aws_sdk_sagemaker::types::{EndpointConfigSummary, EndpointSummary};
    use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};

    use super::*;

    const URI: &str = "s3://models/team/iris-8/output/model.tar.gz";

    fn wanted(traffic: Traffic, alarms: &[&str], deadline: Duration) -> ManagedEndpoint {
        ManagedEndpoint {
            endpoint: "iris".into(),
            model: "iris-v2".into(),
            image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:8".into(),
            model_uri: URI.into(),
            settings: pipeline::SageMakerHosting {
                role: "arn:aws:iam::123456789012:role/SageMakerRole".into(),
                region: None,
                alarms: alarms.iter().map(|a| a.to_string()).collect(),
            },
            instance_type: "ml.m5.large".into(),
            instances: 2,
            variant: "AllTraffic".into(),
            weight: None,
            traffic,
            bake: Duration::from_secs(60),
            deadline,
        }
    }

    fn sagemaker(rules: &[&Rule]) -> SageMaker {
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, rules);
        SageMaker::with_client(client, Polling { first: Duration::from_millis(1), longest: Duration::from_millis(5) })
    }

    fn endpoint(status: EndpointStatus, config: &str) -> DescribeEndpointOutput {
        DescribeEndpointOutput::builder()
            .endpoint_name("iris")
            .endpoint_arn("arn:aws:sagemaker:us-east-1:123456789012:endpoint/iris")
            .endpoint_status(status)
            .endpoint_config_name(config)
            .build()
    }

    fn missing(what: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code("ValidationException").message(format!("Could not find {what} 'x'.")).build()
    }

    /// The configuration a deploy created, the calls to the endpoint, and what was deleted.
    #[derive(Default)]
    struct Seen {
        config: Mutex<String>,
        described: AtomicUsize,
        deleted: Mutex<Vec<String>>,
    }

    /// The rules of an update of `iris` from `iris-1` (model `iris-v1`), the endpoint's statuses
    /// after the update given by `after`, given how many times it was described since.
    fn update_rules(seen: &Arc<Seen>, after: fn(usize, &str) -> DescribeEndpointOutput) -> Vec<Rule> {
        let model = mock!(Client::describe_model).then_output(|| {
            DescribeModelOutput::builder()
                .primary_container(ContainerDefinition::builder().model_data_url(URI).build())
                .build()
        });
        let described = mock!(Client::describe_endpoint).then_compute_output({
            let seen = seen.clone();
            move |_| match seen.described.fetch_add(1, Ordering::SeqCst) {
                0 => endpoint(EndpointStatus::InService, "iris-1"),
                n => after(n, &seen.config.lock().unwrap()),
            }
        });
        let config = mock!(Client::describe_endpoint_config).then_compute_output(|r| {
            let model = if r.endpoint_config_name() == Some("iris-1") { "iris-v1" } else { "iris-v2" };
            DescribeEndpointConfigOutput::builder()
                .production_variants(ProductionVariant::builder().variant_name("AllTraffic").model_name(model).build())
                .build()
        });
        let create_config = mock!(Client::create_endpoint_config)
            .match_requests(|r| {
                let variants = r.production_variants();
                variants.len() == 1
                    && variants[0].model_name() == Some("iris-v2")
                    && variants[0].initial_instance_count() == Some(2)
            })
            .then_compute_output({
                let seen = seen.clone();
                move |r| {
                    *seen.config.lock().unwrap() = r.endpoint_config_name().unwrap_or_default().to_owned();
                    CreateEndpointConfigOutput::builder().build()
                }
            });
        let update = mock!(Client::update_endpoint)
            .match_requests(|r| {
                let policy = r.deployment_config().and_then(|d| d.blue_green_update_policy());
                let routing = policy.and_then(|p| p.traffic_routing_configuration());
                let alarms = r.deployment_config().and_then(|d| d.auto_rollback_configuration());
                routing.is_some_and(|t| {
                    t.r#type() == Some(&TrafficRoutingConfigType::Canary)
                        && t.canary_size().is_some_and(|c| c.value() == Some(10))
                        && t.wait_interval_in_seconds() == Some(60)
                }) && alarms.is_some_and(|a| a.alarms()[0].alarm_name() == Some("iris-5xx"))
            })
            .then_output(|| {
                UpdateEndpointOutput::builder()
                    .endpoint_arn("arn:aws:sagemaker:us-east-1:123456789012:endpoint/iris")
                    .build()
            });
        let list = mock!(Client::list_endpoints).then_output(|| {
            ListEndpointsOutput::builder().endpoints(EndpointSummary::builder().endpoint_name("iris").build()).build()
        });
        let configs = mock!(Client::list_endpoint_configs).then_compute_output({
            let seen = seen.clone();
            move |_| {
                let new = seen.config.lock().unwrap().clone();
                let mut listed = ListEndpointConfigsOutput::builder();
                for name in ["iris-1", new.as_str(), "iris-prod-2"] {
                    listed =
                        listed.endpoint_configs(EndpointConfigSummary::builder().endpoint_config_name(name).build());
                }
                listed.build()
            }
        });
        let delete_config = mock!(Client::delete_endpoint_config).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.deleted.lock().unwrap().push(r.endpoint_config_name().unwrap_or_default().to_owned());
                DeleteEndpointConfigOutput::builder().build()
            }
        });
        let delete_model = mock!(Client::delete_model).then_compute_output({
            let seen = seen.clone();
            move |r| {
                seen.deleted.lock().unwrap().push(r.model_name().unwrap_or_default().to_owned());
                DeleteModelOutput::builder().build()
            }
        });
        vec![model, described, config, create_config, update, list, configs, delete_config, delete_model]
    }

    async fn deploy(sagemaker: &SageMaker, wanted: &ManagedEndpoint) -> (Result<Hosted, Error>, String) {
        let mut log = Vec::new();
        let hosted = sagemaker.host(wanted, &mut log).await;
        (hosted, String::from_utf8(log).unwrap())
    }

    #[tokio::test]
    async fn a_canary_update_with_alarms_goes_in_service_and_what_the_old_config_used_is_deleted() {
        let seen = Arc::new(Seen::default());
        let rules = update_rules(&seen, |n, new| {
            if n == 1 { endpoint(EndpointStatus::Updating, "iris-1") } else { endpoint(EndpointStatus::InService, new) }
        });
        let sagemaker = sagemaker(&rules.iter().collect::<Vec<_>>());
        let wanted = wanted(Traffic::Canary { percent: 10.0 }, &["iris-5xx"], Duration::from_secs(60));
        let (hosted, log) = deploy(&sagemaker, &wanted).await;
        let config = seen.config.lock().unwrap().clone();
        assert!(is_ours(&config, "iris"), "configurations are named <endpoint>-<millis>: {config}");
        let arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/iris".to_owned();
        assert_eq!(hosted.unwrap(), Hosted::InService { arn, config }, "{log}");
        assert!(log.contains("canary 10%, then the rest after 60s, rolled back on iris-5xx"), "{log}");
        assert!(log.contains("endpoint iris: Updating") && log.contains("endpoint iris: InService"), "{log}");
        assert_eq!(*seen.deleted.lock().unwrap(), ["iris-1", "iris-v1"], "the old configuration and its model go");
    }

    #[tokio::test]
    async fn an_update_sagemaker_rolls_back_fails_the_deploy_with_the_config_it_kept() {
        let seen = Arc::new(Seen::default());
        let rules = update_rules(&seen, |n, _| match n {
            1 => endpoint(EndpointStatus::RollingBack, "iris-1"),
            _ => DescribeEndpointOutput::builder()
                .endpoint_status(EndpointStatus::InService)
                .endpoint_config_name("iris-1")
                .failure_reason("Alarm iris-5xx went into ALARM during the canary")
                .build(),
        });
        let sagemaker = sagemaker(&rules.iter().collect::<Vec<_>>());
        let wanted = wanted(Traffic::Canary { percent: 10.0 }, &["iris-5xx"], Duration::from_secs(60));
        let (hosted, log) = deploy(&sagemaker, &wanted).await;
        let Ok(Hosted::RolledBack { config, reason, .. }) = hosted else { panic!("{hosted:?}\n{log}") };
        assert_eq!(config, "iris-1");
        assert!(reason.contains("Alarm iris-5xx went into ALARM"), "{reason}");
        let new = seen.config.lock().unwrap().clone();
        assert_eq!(*seen.deleted.lock().unwrap(), [new, "iris-v2".to_owned()], "the unused new configuration goes");
    }

    #[tokio::test]
    async fn an_endpoint_that_never_leaves_creating_is_deleted_at_the_deadline() {
        let deleted = Arc::new(AtomicUsize::new(0));
        let model = mock!(Client::describe_model).then_error(|| DescribeModelError::generic(missing("model")));
        let create_model = mock!(Client::create_model)
            .match_requests(|r| r.primary_container().and_then(|c| c.model_data_url()) == Some(URI))
            .then_output(|| CreateModelOutput::builder().build());
        let described = mock!(Client::describe_endpoint).then_compute_response({
            let deleted = deleted.clone();
            let calls = AtomicUsize::new(0);
            move |_| match (calls.fetch_add(1, Ordering::SeqCst), deleted.load(Ordering::SeqCst)) {
                (0, _) | (_, 1..) => MockResponse::Error(DescribeEndpointError::generic(missing("endpoint"))),
                _ => MockResponse::Output(endpoint(EndpointStatus::Creating, "x")),
            }
        });
        let create_config =
            mock!(Client::create_endpoint_config).then_output(|| CreateEndpointConfigOutput::builder().build());
        let create = mock!(Client::create_endpoint).then_output(|| CreateEndpointOutput::builder().build());
        let delete = mock!(Client::delete_endpoint).then_compute_output({
            let deleted = deleted.clone();
            move |r| {
                assert_eq!(r.endpoint_name(), Some("iris"));
                deleted.fetch_add(1, Ordering::SeqCst);
                DeleteEndpointOutput::builder().build()
            }
        });
        let sagemaker = sagemaker(&[&model, &create_model, &described, &create_config, &create, &delete]);
        let (hosted, log) = deploy(&sagemaker, &wanted(Traffic::AllAtOnce, &[], Duration::from_millis(30))).await;
        let error = hosted.unwrap_err().to_string();
        assert!(error.contains("endpoint iris was still Creating after 0.03s, the stage's deadline"), "{error}");
        assert!(error.contains("it was deleted"), "{error}");
        assert_eq!(deleted.load(Ordering::SeqCst), 1, "{log}");
        assert!(log.contains("created model iris-v2"), "{log}");
    }

    #[test]
    fn only_configurations_named_for_the_endpoint_are_its_own() {
        assert!(is_ours("iris-1733000000000", "iris"));
        assert!(!is_ours("iris-prod-1733000000000", "iris"));
        assert!(!is_ours("iris-", "iris"));
        let long = "e".repeat(63);
        assert!(config_name(&long).len() <= 63 && is_ours(&config_name(&long), &long));
    }
}
