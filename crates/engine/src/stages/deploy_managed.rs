//! A deploy stage with `backend = "sagemaker"`: the model version becomes a SageMaker model (its
//! image and its `model.tar.gz` on S3, `<group>-v<version>`) and the endpoint serves it, created,
//! or updated in place with the stage's traffic policy and rollback alarms. Smoke tests and
//! champion gates ask such an endpoint through SageMaker's runtime, and a `delete_after_run`
//! endpoint is deleted there when the run ends, with what no endpoint uses any more.

use std::sync::Arc;
use std::time::Duration;

use names::Name;
use pipeline::{Algorithm, DeployPolicy, HostingBackend, Pipeline, Resolved, SageMakerHosting, StageKind};
use runtime::instance::DEFAULT_INSTANCE_TYPE;

use super::outputs::{DeployOutput, StageOutput};
use super::{Log, StageFailure, line, register};
use crate::managed::{Hosted, ManagedEndpoint, ManagedHosting};
use crate::run::RunContext;
use crate::{Engine, Error};

/// How long a SageMaker endpoint may take to be in service when the stage's `startup_timeout`
/// does not say: creating one takes 8 to 25 minutes.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(40 * 60);

/// Refuses, before a run is recorded, a SageMaker deploy stage this engine cannot run: a build
/// without the backend, an instance type SageMaker cannot host on, an algorithm that is not an
/// image, or models kept on this machine.
pub(crate) fn check(engine: &Engine, pipeline: &Pipeline, resolved: &Resolved) -> Result<(), Error> {
    for stage in &resolved.stages {
        let StageKind::Deploy { backend: HostingBackend::SageMaker(_), instance_type, .. } = &stage.kind else {
            continue;
        };
        let invalid = |why: String| Error::Invalid(format!("stage `{}`: {why}", stage.name));
        let backend = backend(engine).map_err(invalid)?;
        backend.check_instance_type(instance_type.as_deref().unwrap_or(DEFAULT_INSTANCE_TYPE)).map_err(invalid)?;
        if !matches!(pipeline.algorithm, Some(Algorithm::Image { .. })) {
            return Err(invalid("SageMaker hosts container images; [algorithm] names none".to_owned()));
        }
        super::train_managed::output_path(engine).map_err(invalid)?;
    }
    Ok(())
}

fn backend(engine: &Engine) -> Result<Arc<dyn ManagedHosting>, String> {
    engine.inner.backends.sagemaker_hosting.clone().ok_or_else(|| super::train_managed::WITHOUT_AWS.to_owned())
}

/// The SageMaker settings of the endpoint, when this pipeline hosts it there.
pub(crate) fn hosted_on<'a>(resolved: &'a Resolved, endpoint: &str) -> Option<&'a SageMakerHosting> {
    resolved.stages.iter().find_map(|stage| match &stage.kind {
        StageKind::Deploy { endpoint: name, backend: HostingBackend::SageMaker(settings), .. }
            if name.as_str() == endpoint =>
        {
            Some(settings)
        }
        _ => None,
    })
}

/// Sends one request to an endpoint this pipeline hosts on SageMaker.
pub(crate) async fn invoke(
    context: &RunContext,
    endpoint: &str,
    settings: &SageMakerHosting,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, StageFailure> {
    let backend = backend(&context.engine).map_err(StageFailure::failed)?;
    backend
        .invoke(endpoint, settings.region.as_deref(), content_type, body)
        .await
        .map_err(|e| StageFailure::failed(format!("calling endpoint {endpoint} on SageMaker: {e}")))
}

/// The configuration an endpoint this pipeline hosts on SageMaker serves, if the endpoint exists.
pub(crate) async fn serves(
    context: &RunContext,
    endpoint: &str,
    settings: &SageMakerHosting,
) -> Result<Option<String>, StageFailure> {
    let backend = backend(&context.engine).map_err(StageFailure::failed)?;
    backend
        .serves(endpoint, settings.region.as_deref())
        .await
        .map_err(|e| StageFailure::failed(format!("describing endpoint {endpoint} on SageMaker: {e}")))
}

/// Deletes a run's temporary endpoint on SageMaker, and what only it used.
pub(crate) async fn delete(engine: &Engine, endpoint: &str, settings: &SageMakerHosting) -> Result<(), String> {
    let backend = backend(engine)?;
    backend.delete(endpoint, settings.region.as_deref()).await.map_err(|e| e.to_string())
}

/// What a deploy stage with `backend = "sagemaker"` asks for, as deploy.rs read it.
pub(crate) struct Wanted<'a> {
    pub endpoint: &'a Name,
    pub startup_timeout: Option<Duration>,
    pub instances: u32,
    pub instance_type: Option<&'a str>,
    pub policy: &'a DeployPolicy,
    pub variant: Option<&'a Name>,
    pub weight: Option<f64>,
    pub settings: &'a SageMakerHosting,
}

pub(crate) async fn run(
    context: &mut RunContext,
    wanted: Wanted<'_>,
    log: &mut Log,
) -> Result<DeployOutput, StageFailure> {
    let Wanted { endpoint, startup_timeout, instances, instance_type, policy, variant, weight, settings } = wanted;
    let backend = backend(&context.engine).map_err(StageFailure::failed)?;
    let version = register::latest_or_register(context, log).await?;
    let (group, number) = (version.model_group.clone(), version.version);
    if !version.artifact_uri.starts_with("s3://") {
        return Err(StageFailure::failed(format!(
            "SageMaker reads models from S3, but {group} v{number} is at {}; train it with artifacts on S3 \
             (--artifacts s3://bucket/prefix)",
            version.artifact_uri
        )));
    }
    // The image this run built and pushed; else the one the version was trained with.
    let image = match context.latest(StageOutput::build).and_then(|b| b.reference.as_deref()) {
        Some(built) => built.to_owned(),
        None => version.algorithm.clone(),
    };
    let wanted = ManagedEndpoint {
        endpoint: endpoint.to_string(),
        model: format!("{group}-v{number}"),
        image,
        model_uri: version.artifact_uri.clone(),
        settings: settings.clone(),
        instance_type: instance_type.unwrap_or(DEFAULT_INSTANCE_TYPE).to_owned(),
        instances,
        variant: variant.cloned().unwrap_or_else(Name::all_traffic).to_string(),
        weight,
        traffic: policy.traffic,
        bake: policy.bake,
        deadline: startup_timeout.unwrap_or(DEFAULT_DEADLINE),
    };
    line(
        log,
        &format!("endpoint {endpoint} on SageMaker: {} ({} x {})", wanted.model, instances, wanted.instance_type),
    )
    .await;
    let actor = format!("run {} #{}", context.pipeline.name, context.run.number);
    let hosted = backend.deploy(&wanted, log).await.map_err(|e| StageFailure::failed(e.to_string()))?;
    match hosted {
        Hosted::InService { arn, config } => {
            context.engine.audit(&actor, &format!("promote {group} v{number} to {endpoint} on SageMaker"), 200).await;
            line(log, &format!("endpoint {endpoint} serves {group} v{number} on SageMaker ({arn})")).await;
            Ok(DeployOutput::SageMaker {
                endpoint: endpoint.to_string(),
                arn,
                config,
                model: wanted.model,
                model_group: group,
                model_version: number,
                instances,
            })
        }
        Hosted::RolledBack { arn, config, reason } => {
            let why = format!("deploy to {endpoint} was rolled back by SageMaker to {config}: {reason}");
            context.engine.audit(&actor, &format!("roll back {endpoint} from {group} v{number}: {why}"), 409).await;
            let output = serde_json::json!({
                "endpoint": endpoint,
                "arn": arn,
                "config": config,
                "model_group": group,
                "model_version": number,
            });
            Err(StageFailure::Failed { reason: why, output })
        }
    }
}
