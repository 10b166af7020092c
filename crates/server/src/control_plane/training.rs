//! Training jobs through SageMaker's API: CreateTrainingJob, DescribeTrainingJob,
//! ListTrainingJobs and StopTrainingJob over the service layer's training jobs (a project of one
//! train stage, and its run).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{RunStatus, SecondaryStatus, TrainingJobStatus};

use super::tags::{self, Tag};
use super::{Fault, arn, constraint, seconds, validation};
use crate::ServiceError;
use crate::auth::Caller;
use crate::service::{self, Service, TrainingJobSpec, TrainingJobView};

/// SageMaker's default `MaxRuntimeInSeconds`: one day.
const DEFAULT_MAX_RUNTIME: u64 = 86_400;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateInput {
    training_job_name: String,
    algorithm_specification: AlgorithmSpecification,
    // Required by SageMaker's shape, and echoed; nothing here assumes a role, and the model goes
    // to the artifact store.
    role_arn: String,
    output_data_config: Value,
    #[serde(default)]
    input_data_config: Vec<Channel>,
    #[serde(default)]
    hyper_parameters: BTreeMap<String, String>,
    resource_config: Option<ResourceConfig>,
    stopping_condition: Option<StoppingCondition>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AlgorithmSpecification {
    training_image: Option<String>,
    algorithm_name: Option<String>,
    training_input_mode: String,
    #[serde(default)]
    metric_definitions: Vec<MetricDefinition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDefinition {
    name: String,
    regex: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Channel {
    channel_name: String,
    data_source: DataSource,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataSource {
    s3_data_source: Option<S3DataSource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3DataSource {
    s3_uri: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceConfig {
    instance_type: Option<String>,
    instance_count: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoppingCondition {
    max_runtime_in_seconds: Option<u64>,
}

pub(super) async fn create(
    service: &Service,
    caller: &Caller,
    region: &str,
    input: CreateInput,
) -> Result<Value, Fault> {
    let request = echo_source(&input);
    let tags = tags::given(&input.tags)?;
    let spec = spec(input, request)?;
    service.create_training_job(&spec, caller).await?;
    tags::keep(service, &format!("training-job/{}", spec.name), &tags).await?;
    Ok(json!({ "TrainingJobArn": arn(region, "training-job", &spec.name) }))
}

/// What the request said, kept for DescribeTrainingJob: the fields it echoes, as sent.
fn echo_source(input: &CreateInput) -> Value {
    // Rebuilt from what was read, in SageMaker's names: what sagebrush does not read is not echoed.
    let algorithm = &input.algorithm_specification;
    let mut specification = json!({ "TrainingInputMode": algorithm.training_input_mode });
    if let Some(image) = &algorithm.training_image {
        specification["TrainingImage"] = image.clone().into();
    }
    if !algorithm.metric_definitions.is_empty() {
        specification["MetricDefinitions"] = algorithm
            .metric_definitions
            .iter()
            .map(|m| json!({ "Name": m.name, "Regex": m.regex }))
            .collect::<Vec<_>>()
            .into();
    }
    let channels: Vec<Value> = input
        .input_data_config
        .iter()
        .map(|c| {
            let uri = c.data_source.s3_data_source.as_ref().map(|s| s.s3_uri.as_str());
            json!({ "ChannelName": c.channel_name, "DataSource": { "S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated" } } })
        })
        .collect();
    let resources = input.resource_config.as_ref();
    json!({
        "AlgorithmSpecification": specification,
        "RoleArn": input.role_arn,
        "InputDataConfig": channels,
        "OutputDataConfig": input.output_data_config,
        "ResourceConfig": {
            "InstanceType": resources.and_then(|r| r.instance_type.clone())
                .unwrap_or_else(|| runtime::instance::DEFAULT_INSTANCE_TYPE.to_owned()),
            "InstanceCount": resources.and_then(|r| r.instance_count).unwrap_or(1),
            "VolumeSizeInGB": 1,
        },
        "StoppingCondition": { "MaxRuntimeInSeconds": max_runtime(input) },
        "HyperParameters": input.hyper_parameters,
    })
}

fn max_runtime(input: &CreateInput) -> u64 {
    input.stopping_condition.as_ref().and_then(|s| s.max_runtime_in_seconds).unwrap_or(DEFAULT_MAX_RUNTIME)
}

fn spec(input: CreateInput, request: Value) -> Result<TrainingJobSpec, Fault> {
    let name = service::name("training job", &input.training_job_name)
        .map_err(|e| constraint(&input.training_job_name, "trainingJobName", &e))?;
    let algorithm = &input.algorithm_specification;
    let image = match (&algorithm.training_image, &algorithm.algorithm_name) {
        (Some(image), None) => image.clone(),
        (None, Some(_)) => {
            return Err(validation(
                "sagebrush has no algorithm resources; give AlgorithmSpecification.TrainingImage \
                 (an image, an ECR image URI, or builtin:<algorithm>)",
            ));
        }
        _ => return Err(validation("AlgorithmSpecification names a TrainingImage or an AlgorithmName: give one")),
    };
    if algorithm.training_input_mode == "Pipe" {
        return Err(validation("TrainingInputMode Pipe is not supported here; use File (or FastFile, read as File)"));
    }
    let mut channels = BTreeMap::new();
    for channel in &input.input_data_config {
        let Some(source) = &channel.data_source.s3_data_source else {
            return Err(validation(format!(
                "channel {}: sagebrush reads channels from an S3DataSource only",
                channel.channel_name
            )));
        };
        channels.insert(channel.channel_name.clone(), source.s3_uri.clone());
    }
    let resources = input.resource_config.as_ref();
    let max_runtime_seconds = max_runtime(&input);
    if max_runtime_seconds == 0 {
        return Err(validation("StoppingCondition.MaxRuntimeInSeconds is at least 1"));
    }
    Ok(TrainingJobSpec {
        name,
        image,
        channels,
        hyperparameters: input.hyper_parameters,
        metrics: algorithm.metric_definitions.iter().map(|m| (m.name.clone(), m.regex.clone())).collect(),
        instance_type: resources.and_then(|r| r.instance_type.clone()),
        instance_count: resources.and_then(|r| r.instance_count).unwrap_or(1),
        max_runtime_seconds,
        request,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JobInput {
    training_job_name: String,
}

pub(super) async fn describe(service: &Service, region: &str, input: JobInput) -> Result<Value, Fault> {
    let view = find(service, &input.training_job_name).await?;
    Ok(description(&view, region))
}

pub(super) async fn stop(service: &Service, input: JobInput) -> Result<Value, Fault> {
    let name = job_name(&input.training_job_name)?;
    let view = service.training_job(&name).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            // What botocore models for StopTrainingJob, so boto3 raises its ResourceNotFound.
            Fault::new(StatusCode::BAD_REQUEST, "ResourceNotFound", format!("Could not find training job \"{name}\"."))
        } else {
            Fault::from(e)
        }
    })?;
    let (status, _, _) = state(&view);
    if status != TrainingJobStatus::InProgress {
        return Err(validation(format!(
            "The request was rejected because the training job is in status {}.",
            json!(status).as_str().unwrap_or_default()
        )));
    }
    service.stop_training_job(&name).await.map_err(not_found)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInput {
    name_contains: Option<String>,
    status_equals: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
    sort_order: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    training_job_name: String,
    training_job_arn: String,
    creation_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    training_end_time: Option<f64>,
    last_modified_time: f64,
    training_job_status: TrainingJobStatus,
}

pub(super) async fn list(service: &Service, region: &str, input: ListInput) -> Result<Value, Fault> {
    let mut views = service.training_job_views().await?;
    // SageMaker's default order: the newest first.
    views.sort_by_key(|v| std::cmp::Reverse(v.run.created_at));
    if input.sort_order.as_deref() == Some("Ascending") {
        views.reverse();
    }
    let summaries: Vec<Summary> = views
        .iter()
        .filter(|v| input.name_contains.as_deref().is_none_or(|part| v.name.contains(part)))
        .map(|v| {
            let (status, _, _) = state(v);
            Summary {
                training_job_name: v.name.to_string(),
                training_job_arn: arn(region, "training-job", &v.name),
                creation_time: seconds(v.run.created_at),
                training_end_time: end_ms(v).map(seconds),
                last_modified_time: seconds(last_modified(v)),
                training_job_status: status,
            }
        })
        .filter(|s| input.status_equals.as_deref().is_none_or(|wanted| wanted == s.training_job_status.to_string()))
        .collect();
    let (page, next) = super::page(&summaries, input.max_results, input.next_token.as_deref())?;
    let mut output = json!({ "TrainingJobSummaries": page });
    if let Some(next) = next {
        output["NextToken"] = next.into();
    }
    Ok(output)
}

async fn find(service: &Service, text: &str) -> Result<TrainingJobView, Fault> {
    let name = job_name(text)?;
    service.training_job(&name).await.map_err(not_found)
}

fn job_name(text: &str) -> Result<names::Name, Fault> {
    service::name("training job", text).map_err(|e| constraint(text, "trainingJobName", &e))
}

/// SageMaker answers a missing job with a ValidationException, which its waiter reads as a failure.
fn not_found(e: ServiceError) -> Fault {
    if e.status == StatusCode::NOT_FOUND { validation("Requested resource not found.") } else { Fault::from(e) }
}

/// The job's status pair and failure reason: its training job's once the stage started, else
/// its run's (queued, or ended before training).
fn state(view: &TrainingJobView) -> (TrainingJobStatus, SecondaryStatus, Option<String>) {
    if let Some(job) = &view.job {
        return (job.status, job.secondary_status, job.failure_reason.clone());
    }
    match view.run.status {
        RunStatus::Queued | RunStatus::Running | RunStatus::Waiting => {
            (TrainingJobStatus::InProgress, SecondaryStatus::Starting, None)
        }
        RunStatus::Succeeded => (TrainingJobStatus::Completed, SecondaryStatus::Completed, None),
        RunStatus::Failed => (TrainingJobStatus::Failed, SecondaryStatus::Failed, view.run.reason.clone()),
        RunStatus::Cancelled => (TrainingJobStatus::Stopped, SecondaryStatus::Stopped, None),
    }
}

fn end_ms(view: &TrainingJobView) -> Option<i64> {
    view.job.as_ref().and_then(|j| j.finished_at).or(view.run.finished_at)
}

fn last_modified(view: &TrainingJobView) -> i64 {
    let transitions = view.job.as_ref().and_then(|j| j.transitions.last().map(|t| t.start_ms));
    end_ms(view).or(transitions).or(view.run.started_at).unwrap_or(view.run.created_at)
}

/// SageMaker's words for each secondary status.
fn status_message(status: SecondaryStatus) -> &'static str {
    match status {
        SecondaryStatus::Starting => "Preparing the instances for training",
        SecondaryStatus::Downloading => "Downloading input data",
        SecondaryStatus::Training => "Training image download completed. Training in progress.",
        SecondaryStatus::Uploading => "Uploading generated training model",
        SecondaryStatus::Completed => "Training job completed",
        SecondaryStatus::Failed => "Training job failed",
        SecondaryStatus::Stopping => "Stopping the training job",
        SecondaryStatus::Stopped => "Training job stopped",
        SecondaryStatus::MaxRuntimeExceeded => "Training job stopped: it ran longer than MaxRuntimeInSeconds",
        _ => "",
    }
}

fn description(view: &TrainingJobView, region: &str) -> Value {
    let (status, secondary, failure) = state(view);
    let mut output = json!({
        "TrainingJobName": view.name,
        "TrainingJobArn": arn(region, "training-job", &view.name),
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "ModelArtifacts": { "S3ModelArtifacts": view.job.as_ref().and_then(|j| j.model_uri.clone()).unwrap_or_default() },
        "CreationTime": seconds(view.run.created_at),
        "LastModifiedTime": seconds(last_modified(view)),
    });
    // The request as kept holds only the fields Describe gives back.
    for (field, value) in view.request.as_object().into_iter().flatten() {
        output[field.as_str()] = value.clone();
    }
    if let Some(reason) = failure {
        output["FailureReason"] = reason.into();
    }
    if let Some(started) = view.run.started_at {
        output["TrainingStartTime"] = seconds(started).into();
    }
    if let Some(ended) = end_ms(view) {
        output["TrainingEndTime"] = seconds(ended).into();
        let from = view.run.started_at.unwrap_or(view.run.created_at);
        let took = ((ended - from).max(0) as f64 / 1000.0).ceil() as i64;
        output["TrainingTimeInSeconds"] = took.into();
        output["BillableTimeInSeconds"] = took.into();
    }
    if let Some(job) = &view.job {
        let transitions = &job.transitions.0;
        output["SecondaryStatusTransitions"] = transitions
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut transition = json!({
                    "Status": t.status,
                    "StartTime": seconds(t.start_ms),
                    "StatusMessage": status_message(t.status),
                });
                if let Some(next) = transitions.get(i + 1) {
                    transition["EndTime"] = seconds(next.start_ms).into();
                }
                transition
            })
            .collect::<Vec<_>>()
            .into();
        let at = seconds(job.finished_at.unwrap_or(job.created_at));
        if let Some(metrics) = job.metrics.as_object() {
            output["FinalMetricDataList"] = metrics
                .iter()
                .filter_map(|(name, value)| {
                    Some(json!({ "MetricName": name, "Value": value.as_f64()?, "Timestamp": at }))
                })
                .collect::<Vec<_>>()
                .into();
        }
    }
    output
}
