//! The deploy stage: a model version onto an endpoint (with its traffic policy, variant and lifetime),
//! a multi-model endpoint, or a serial inference pipeline.

use names::Name;
use pipeline::{HostingBackend, Stage, StageKind};

use super::outputs::{DeployOutput, StageOutput};
use super::{Log, StageFailure, line, register};
use crate::run::RunContext;

pub(crate) async fn run(context: &mut RunContext, stage: &Stage, log: &mut Log) -> Result<DeployOutput, StageFailure> {
    let StageKind::Deploy {
        endpoint,
        startup_timeout,
        instances,
        instance_type,
        policy,
        variant,
        weight,
        delete_after_run,
        ttl,
        multi_model,
        chain,
        capture_percent: _,
        backend,
    } = &stage.kind
    else {
        return Err(StageFailure::failed("not a deploy stage"));
    };
    if *delete_after_run && !context.temporary_endpoints.contains(endpoint) {
        // Noted before deploying, so a deploy that fails half-way is cleaned up too.
        context.temporary_endpoints.push(endpoint.clone());
    }
    if let HostingBackend::SageMaker(settings) = backend {
        let wanted = super::deploy_managed::Wanted {
            endpoint,
            startup_timeout: *startup_timeout,
            instances: *instances,
            instance_type: instance_type.as_deref(),
            policy,
            variant: variant.as_ref(),
            weight: *weight,
            settings,
        };
        return super::deploy_managed::run(context, wanted, log).await;
    }
    if !chain.is_empty() {
        context.engine.deploy_chain(endpoint, chain, context.run.id, *ttl).await?;
        let url = context.engine.invocation_url(endpoint);
        line(log, &format!("endpoint {endpoint} runs {} in order, at {url}", crate::deploy::join(chain, " -> "))).await;
        let chain = chain.iter().map(Name::to_string).collect();
        return Ok(DeployOutput::Chain { endpoint: endpoint.to_string(), url, chain });
    }
    if let Some(multi_model) = multi_model {
        let dir = context.source_dir.join(&multi_model.dir);
        let budget = multi_model.memory_budget_bytes;
        // An image algorithm serves the models in its container: the one this run built, else the named one.
        let image = match &context.pipeline.algorithm {
            Some(pipeline::Algorithm::Image { image }) => Some(
                context.latest(StageOutput::build).and_then(|b| b.reference.as_deref()).unwrap_or(image).to_owned(),
            ),
            _ => None,
        };
        let startup = startup_timeout.unwrap_or(crate::deploy::DEFAULT_STARTUP_TIMEOUT);
        let engine = context.engine.clone();
        engine.deploy_multi_model(endpoint, &dir, image.as_deref(), budget, startup, context.run.id, *ttl).await?;
        let url = context.engine.invocation_url(endpoint);
        line(log, &format!("endpoint {endpoint} serves the models in {} at {url}", dir.display())).await;
        return Ok(DeployOutput::MultiModel {
            endpoint: endpoint.to_string(),
            url,
            multi_model: dir,
            memory_budget_bytes: budget,
        });
    }
    let version = register::latest_or_register(context, log).await?;
    let hosting = crate::Hosting {
        startup_timeout: startup_timeout.unwrap_or(crate::deploy::DEFAULT_STARTUP_TIMEOUT),
        instances: *instances,
        instance_type: instance_type.clone(),
        variant: variant.clone().unwrap_or_else(Name::all_traffic),
        weight: *weight,
        ttl: *ttl,
    };
    let mut events = Vec::new();
    let result = context.engine.deploy(endpoint, &version, context.run.id, &hosting, policy, &mut events).await;
    for event in &events {
        line(log, event).await;
    }
    let actor = format!("run {} #{}", context.pipeline.name, context.run.number);
    match result {
        Ok(()) => {
            let action = format!("promote {} v{} to {endpoint}", version.model_group, version.version);
            context.engine.audit(&actor, &action, 200).await;
            let url = context.engine.invocation_url(endpoint);
            line(log, &format!("endpoint {endpoint} serves {} v{} at {url}", version.model_group, version.version))
                .await;
            Ok(DeployOutput::Version {
                endpoint: endpoint.to_string(),
                model_group: version.model_group,
                model_version: version.version,
                instances: *instances,
                events,
                url,
            })
        }
        Err(e @ crate::Error::RolledBack(_)) => {
            let action = format!("roll back {endpoint} from {} v{}: {e}", version.model_group, version.version);
            context.engine.audit(&actor, &action, 409).await;
            let output = serde_json::json!({
                "endpoint": endpoint,
                "model_group": version.model_group,
                "model_version": version.version,
                "instances": instances,
                "events": events,
            });
            Err(StageFailure::Failed { reason: format!("deploy to {endpoint} {e}"), output })
        }
        Err(e) => Err(e.into()),
    }
}
