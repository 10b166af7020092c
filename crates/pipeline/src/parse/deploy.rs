//! A deploy stage: which model goes where, how traffic moves to it, and who hosts it.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::{Cx, Item, StageItem, get, sagemaker, type_name};
use crate::Error;
use crate::error::did_you_mean;
use crate::spec::{Algorithm, DeployPolicy, HostingBackend, MultiModel, SageMakerHosting, StageKind, Traffic};
use names::Name;

/// More instances than this on one machine is a mistake, not a plan.
const MAX_INSTANCES: u32 = 16;

/// SageMaker's default quota of instances per endpoint is far lower; its own error says when one is reached.
const MAX_SAGEMAKER_INSTANCES: u32 = 100;

/// The keys only a SageMaker endpoint takes.
const SAGEMAKER_KEYS: [&str; 3] = ["role", "region", "alarms"];

/// What this machine's router does that a SageMaker endpoint is not given from here.
const LOCAL_KEYS: [&str; 7] =
    ["multi_model", "memory_budget_mb", "chain", "capture_percent", "ttl", "max_error_rate", "max_p99_ms"];

/// Who hosts the endpoint: `backend = "local"` (the default) or `"sagemaker"` with its settings.
fn backend(s: &StageItem<'_, '_>) -> Result<HostingBackend, Error> {
    let StageItem { cx, table, .. } = *s;
    if !sagemaker::chosen(s)? {
        sagemaker::refuse(
            s,
            &SAGEMAKER_KEYS,
            "is a setting of SageMaker endpoints, but this stage deploys locally",
            "add backend = \"sagemaker\" to host the endpoint on SageMaker, or remove it",
        )?;
        return Ok(HostingBackend::Local);
    }
    sagemaker::image_algorithm(s, "serve")?;
    sagemaker::refuse(
        s,
        &LOCAL_KEYS,
        "is served by this machine's router, not by SageMaker endpoints",
        "remove it; for rollback on errors or latency, give `alarms` (CloudWatch alarm names)",
    )?;
    let role = sagemaker::role(s)?;
    let alarms = match get(table, "alarms") {
        None => Vec::new(),
        Some(item) => cx.array("alarms", item)?.iter().map(|a| cx.string("alarms", a)).collect::<Result<_, _>>()?,
    };
    Ok(HostingBackend::SageMaker(SageMakerHosting { role, region: s.optional_string("region")?, alarms }))
}

fn deploy_policy(cx: &Cx<'_>, table: &DeTable<'_>, stage: &Item<'_>) -> Result<DeployPolicy, Error> {
    let percent = match get(table, "traffic_percent") {
        None => None,
        Some(item) => {
            let percent = cx.float("traffic_percent", item)?;
            if !(percent > 0.0 && percent < 100.0) {
                let hint = "the share the new model gets first (canary) or per step (linear), e.g. 10".to_owned();
                return Err(cx.error(
                    &item.span(),
                    format!("traffic_percent = {percent} must be between 0 and 100"),
                    Some(hint),
                ));
            }
            Some(percent)
        }
    };
    let traffic = match get(table, "traffic") {
        None if percent.is_some() => {
            let hint = "add traffic = \"canary\" or traffic = \"linear\"".to_owned();
            return Err(cx.error(&stage.span(), "traffic_percent needs a canary or linear `traffic`", Some(hint)));
        }
        None => Traffic::AllAtOnce,
        Some(item) => match cx.string("traffic", item)?.as_str() {
            "all-at-once" => Traffic::AllAtOnce,
            "canary" => Traffic::Canary { percent: percent.unwrap_or(10.0) },
            "linear" => Traffic::Linear { percent: percent.unwrap_or(20.0) },
            other => {
                let known = ["all-at-once", "canary", "linear"];
                let hint = did_you_mean(other, known).map_or_else(
                    || format!("traffic is one of {}", known.join(", ")),
                    |c| format!("did you mean \"{c}\"?"),
                );
                return Err(cx.error(&item.span(), format!("unknown traffic \"{other}\""), Some(hint)));
            }
        },
    };
    let bake = get(table, "bake").map(|b| cx.duration("bake", b)).transpose()?.unwrap_or(Duration::ZERO);
    let max_error_rate = match get(table, "max_error_rate") {
        None => None,
        Some(item) => {
            let rate = cx.float("max_error_rate", item)?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(cx.error(&item.span(), format!("max_error_rate = {rate} must be between 0 and 1"), None));
            }
            Some(rate)
        }
    };
    let max_p99_ms = get(table, "max_p99_ms").map(|i| cx.float("max_p99_ms", i)).transpose()?;
    Ok(DeployPolicy { traffic, bake, max_error_rate, max_p99_ms })
}

pub(super) fn deploy_stage(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, pipeline, table, item, kind_item, .. } = *s;
    let backend = backend(s)?;
    let max_instances = match backend {
        HostingBackend::Local => MAX_INSTANCES,
        HostingBackend::SageMaker(_) => MAX_SAGEMAKER_INSTANCES,
    };
    let policy = deploy_policy(cx, table, item)?;
    if let (HostingBackend::SageMaker(_), Some(weight)) = (&backend, get(table, "weight"))
        && policy.traffic != Traffic::AllAtOnce
    {
        return Err(cx.error(
            &weight.span(),
            "SageMaker shifts traffic in steps only on an endpoint with one variant",
            Some("remove `weight` for a canary or linear update, or `traffic` for an A/B variant".to_owned()),
        ));
    }
    let required = |key: &str, example: &str| s.required(key, example);
    let optional_string = |key: &str| s.optional_string(key);
    Ok(StageKind::Deploy {
        endpoint: cx.name("endpoint", required("endpoint", "\"my-model-test\"")?)?,
        startup_timeout: get(table, "startup_timeout").map(|t| cx.duration("startup_timeout", t)).transpose()?,
        instances: match get(table, "instances") {
            None => 1,
            Some(item) => {
                let count = cx.int("instances", item)?;
                u32::try_from(count).ok().filter(|c| (1..=max_instances).contains(c)).ok_or_else(|| {
                    cx.error(
                        &item.span(),
                        format!("instances = {count} is out of range"),
                        Some(format!("an endpoint has 1 to {max_instances} instances")),
                    )
                })?
            }
        },
        instance_type: {
            let instance_type = optional_string("instance_type")?;
            if let HostingBackend::SageMaker(_) = backend {
                sagemaker::instance_type(s, instance_type.as_deref())?;
            }
            instance_type
        },
        policy,
        variant: get(table, "variant").map(|v| cx.name("variant", v)).transpose()?,
        weight: match get(table, "weight") {
            None => None,
            Some(item) => {
                let weight = cx.float("weight", item)?;
                if !(weight >= 0.0 && weight.is_finite()) {
                    let message = format!("weight = {weight} must be a number from 0 up");
                    return Err(cx.error(
                        &item.span(),
                        message,
                        Some("weights are relative, e.g. 0.9 and 0.1".to_owned()),
                    ));
                }
                Some(weight)
            }
        },
        delete_after_run: match get(table, "delete_after_run") {
            None => false,
            Some(item) => match item.get_ref() {
                DeValue::Boolean(b) => *b,
                other => {
                    let message = format!("`delete_after_run` must be true or false, not {}", type_name(other));
                    return Err(cx.error(&item.span(), message, None));
                }
            },
        },
        ttl: get(table, "ttl").map(|t| cx.duration("ttl", t)).transpose()?,
        multi_model: match get(table, "multi_model").map(|d| cx.path("multi_model", d)).transpose()? {
            None => None,
            Some(dir) => {
                if !matches!(pipeline.algorithm, Some(Algorithm::Builtin(_) | Algorithm::Image { .. })) {
                    let hint = "set [algorithm] builtin (models served in-process) or image (a container with \
                                SageMaker's multi-model API)"
                        .to_owned();
                    let message = "multi_model needs a built-in or image [algorithm]";
                    return Err(cx.error(&kind_item.span(), message, Some(hint)));
                }
                let budget_mb = match get(table, "memory_budget_mb") {
                    None => 1024.0,
                    Some(item) => {
                        let mb = cx.float("memory_budget_mb", item)?;
                        if !(mb > 0.0 && mb.is_finite()) {
                            return Err(cx.error(
                                &item.span(),
                                format!("memory_budget_mb = {mb} must be above 0"),
                                None,
                            ));
                        }
                        mb
                    }
                };
                Some(MultiModel { dir, memory_budget_bytes: (budget_mb * 1024.0 * 1024.0) as u64 })
            }
        },
        chain: match get(table, "chain") {
            None => Vec::new(),
            Some(item) => {
                let steps: Vec<Name> =
                    cx.array("chain", item)?.iter().map(|s| cx.name("chain", s)).collect::<Result<_, _>>()?;
                if steps.len() < 2 {
                    let hint = "list the endpoints a request goes through, e.g. [\"prep\", \"model\", \"post\"]";
                    return Err(cx.error(
                        &item.span(),
                        "an inference pipeline needs at least two steps",
                        Some(hint.to_owned()),
                    ));
                }
                steps
            }
        },
        capture_percent: match get(table, "capture_percent") {
            None => None,
            Some(item) => {
                let percent = cx.float("capture_percent", item)?;
                if !(0.0..=100.0).contains(&percent) {
                    return Err(cx.error(
                        &item.span(),
                        format!("capture_percent = {percent} must be between 0 and 100"),
                        None,
                    ));
                }
                Some(percent)
            }
        },
        backend,
    })
}
