//! A train stage: its channels, hyperparameters, metrics, and where it runs.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::{Cx, DEFAULT_MAX_RUNTIME, Item, StageItem, get, sagemaker, type_name};
use crate::Error;
use crate::spec::{MetricDefinition, SageMakerTraining, StageKind, TrainingBackend};

/// The keys only a SageMaker job takes.
const SAGEMAKER_KEYS: [&str; 4] = ["role", "instance_count", "volume_size_gb", "region"];

/// SageMaker's longest training job (`MaxRuntimeInSeconds`): 28 days.
const SAGEMAKER_MAX_RUNTIME: Duration = Duration::from_secs(28 * 24 * 3600);

/// Where the stage's job runs: `backend = "local"` (the default) or `"sagemaker"` with its settings.
fn backend(s: &StageItem<'_, '_>) -> Result<TrainingBackend, Error> {
    let StageItem { cx, table, .. } = *s;
    if !sagemaker::chosen(s)? {
        sagemaker::refuse(
            s,
            &SAGEMAKER_KEYS,
            "is a setting of SageMaker training jobs, but this stage runs locally",
            "add backend = \"sagemaker\" to train on SageMaker, or remove it",
        )?;
        return Ok(TrainingBackend::Local);
    }
    sagemaker::image_algorithm(s, "train")?;
    let role = sagemaker::role(s)?;
    let count = |key: &str, default: u32, max: u32| -> Result<u32, Error> {
        let Some(item) = get(table, key) else { return Ok(default) };
        let value = cx.int(key, item)?;
        u32::try_from(value).ok().filter(|v| (1..=max).contains(v)).ok_or_else(|| {
            cx.error(&item.span(), format!("`{key}` = {value} is out of range"), Some(format!("give 1 to {max}")))
        })
    };
    Ok(TrainingBackend::SageMaker(SageMakerTraining {
        role,
        instance_count: count("instance_count", 1, 100)?,
        // SageMaker's estimators' default volume.
        volume_size_gb: count("volume_size_gb", 30, 16384)?,
        region: s.optional_string("region")?,
    }))
}

/// What SageMaker itself would refuse, refused here with the file's line and column.
fn sagemaker_limits(s: &StageItem<'_, '_>, max_runtime: Duration, instance_type: Option<&str>) -> Result<(), Error> {
    let StageItem { cx, table, item, .. } = *s;
    if max_runtime > SAGEMAKER_MAX_RUNTIME {
        let span = get(table, "max_runtime").map_or_else(|| item.span(), |i| i.span());
        return Err(cx.error(
            &span,
            "a SageMaker training job runs at most 28 days",
            Some("give max_runtime = \"28d\" or less".to_owned()),
        ));
    }
    sagemaker::instance_type(s, instance_type)
}

pub(super) fn train_stage(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, pipeline, table, kind_item, .. } = *s;
    let required = |key: &str, example: &str| s.required(key, example);
    if pipeline.algorithm.is_none() {
        return Err(cx.error(
            &kind_item.span(),
            "a train stage needs an [algorithm]",
            Some(
                "add [algorithm] with builtin = \"decision-tree\" or process = \"<folder with train and serve>\""
                    .to_owned(),
            ),
        ));
    }
    let kind = train(cx, table, required("channels", "{ training = \"data/train.csv\" }")?)?;
    let backend = backend(s)?;
    if let (TrainingBackend::SageMaker(_), StageKind::Train { max_runtime, instance_type, .. }) = (&backend, &kind) {
        sagemaker_limits(s, *max_runtime, instance_type.as_deref())?;
    }
    Ok(match kind {
        StageKind::Train { channels, hyperparameters, max_runtime, metrics, instance_type, .. } => {
            StageKind::Train { channels, hyperparameters, max_runtime, metrics, instance_type, backend }
        }
        other => other,
    })
}

fn train(cx: &Cx<'_>, table: &DeTable<'_>, channels_item: &Item<'_>) -> Result<StageKind, Error> {
    let mut channels = BTreeMap::new();
    for (key, item) in cx.table("channels", channels_item)?.iter() {
        let name = key.get_ref().to_string();
        // SageMaker's rule, less a leading `.`: the name is a folder under /opt/ml/input/data.
        let valid = name.len() <= 64
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(cx.error(
                &key.span(),
                format!(
                    "channel name `{}` may use only letters, digits, `.`, `_` and `-`, not starting with `.`",
                    names::excerpt(&name, 64)
                ),
                None,
            ));
        }
        channels.insert(name, cx.channel(item)?);
    }
    if channels.is_empty() {
        return Err(cx.error(
            &channels_item.span(),
            "`channels` is empty",
            Some("add training = \"data/train.csv\"".to_owned()),
        ));
    }
    let mut hyperparameters = BTreeMap::new();
    if let Some(item) = get(table, "hyperparameters") {
        for (key, value) in cx.table("hyperparameters", item)?.iter() {
            // SageMaker passes every hyperparameter as a string.
            let text = match value.get_ref() {
                DeValue::String(_) => cx.string(key.get_ref(), value)?,
                DeValue::Integer(i) => i.as_str().to_owned(),
                DeValue::Float(f) => f.as_str().to_owned(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    return Err(cx.error(
                        &value.span(),
                        format!(
                            "hyperparameter `{}` must be a string or number, not {}",
                            key.get_ref(),
                            type_name(other)
                        ),
                        None,
                    ));
                }
            };
            hyperparameters.insert(key.get_ref().to_string(), text);
        }
    }
    let max_runtime =
        get(table, "max_runtime").map(|t| cx.duration("max_runtime", t)).transpose()?.unwrap_or(DEFAULT_MAX_RUNTIME);
    if max_runtime.is_zero() {
        return Err(cx.error(&(0..0), "max_runtime must be more than zero", None));
    }
    let mut metrics = Vec::new();
    if let Some(item) = get(table, "metrics") {
        for definition in cx.array("metrics", item)? {
            let fields = cx.table("metrics", definition)?;
            cx.allow(fields, "a metric definition", &["name", "regex"])?;
            let need = |key: &str| {
                get(fields, key).ok_or_else(|| {
                    cx.error(
                        &definition.span(),
                        format!("a metric definition needs `{key}`"),
                        Some(
                            "write { name = \"validation:accuracy\", regex = \"validation_accuracy=([0-9.]+)\" }"
                                .to_owned(),
                        ),
                    )
                })
            };
            let name = cx.string("name", need("name")?)?;
            let regex_item = need("regex")?;
            let regex = cx.string("regex", regex_item)?;
            match regex::Regex::new(&regex) {
                Ok(compiled) if compiled.captures_len() >= 2 => {}
                Ok(_) => {
                    return Err(cx.error(
                        &regex_item.span(),
                        format!("metric regex {regex:?} has no capture group"),
                        Some("put ( ) around the number, e.g. \"accuracy=([0-9.]+)\"".to_owned()),
                    ));
                }
                Err(e) => {
                    return Err(cx.error(&regex_item.span(), format!("metric regex is invalid: {e}"), None));
                }
            }
            metrics.push(MetricDefinition { name, regex });
        }
    }
    let instance_type = get(table, "instance_type").map(|i| cx.string("instance_type", i)).transpose()?;
    Ok(StageKind::Train {
        channels,
        hyperparameters,
        max_runtime,
        metrics,
        instance_type,
        backend: TrainingBackend::Local,
    })
}
