//! Training jobs: CreateTrainingJob, DescribeTrainingJob until the job ends (each new secondary
//! status reported as it appears), StopTrainingJob on cancel.

use std::collections::BTreeMap;

use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use aws_sdk_sagemaker::types::{
    self as sm, AlgorithmSpecification, Channel, DataSource, OutputDataConfig, ResourceConfig, S3DataDistribution,
    S3DataSource, S3DataType, StoppingCondition, TrainingInputMode, TrainingInstanceType,
};
use engine::TrainingEnd as End;
use engine::{ManagedError, ManagedJob, ManagedOutcome, ManagedTraining, Progress};
use futures::future::BoxFuture;
use store::{SecondaryStatus, TrainingJobStatus};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::{Error, Polling, SageMaker, known};

impl ManagedTraining for SageMaker {
    fn check_instance_type(&self, instance_type: &str) -> Result<(), String> {
        known(TrainingInstanceType::values(), instance_type, "training")
    }

    fn identity(&self) -> BoxFuture<'_, engine::Identity> {
        Box::pin(self.who())
    }

    fn run<'a>(
        &'a self,
        job: &'a ManagedJob,
        progress: mpsc::UnboundedSender<Progress>,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<ManagedOutcome, ManagedError>> {
        Box::pin(async move { Ok(self.train(job, progress, log, cancel).await?) })
    }
}

impl SageMaker {
    async fn train(
        &self,
        job: &ManagedJob,
        progress: mpsc::UnboundedSender<Progress>,
        log: &mut (dyn AsyncWrite + Unpin + Send),
        mut cancel: watch::Receiver<bool>,
    ) -> Result<ManagedOutcome, Error> {
        let client = self.client(job.settings.region.as_deref()).await?;
        let created = client
            .create_training_job()
            .training_job_name(&job.name)
            .algorithm_specification(
                AlgorithmSpecification::builder()
                    .training_image(&job.image)
                    .training_input_mode(TrainingInputMode::File)
                    .set_metric_definitions(Some(
                        job.metric_definitions
                            .iter()
                            .map(|m| sm::MetricDefinition::builder().name(&m.name).regex(&m.regex).build())
                            .collect(),
                    ))
                    .build(),
            )
            .role_arn(&job.settings.role)
            .set_input_data_config(Some(job.channels.iter().map(|(name, uri)| channel(name, uri)).collect()))
            .output_data_config(OutputDataConfig::builder().s3_output_path(&job.output_path).build())
            .resource_config(
                ResourceConfig::builder()
                    .instance_type(TrainingInstanceType::from(job.instance_type.as_str()))
                    .instance_count(i32::try_from(job.settings.instance_count).unwrap_or(i32::MAX))
                    .volume_size_in_gb(i32::try_from(job.settings.volume_size_gb).unwrap_or(i32::MAX))
                    .build(),
            )
            .stopping_condition(
                StoppingCondition::builder()
                    .max_runtime_in_seconds(i32::try_from(job.max_runtime.as_secs().max(1)).unwrap_or(i32::MAX))
                    .build(),
            )
            .set_hyper_parameters(Some(job.hyperparameters.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| Error::of("CreateTrainingJob", e))?;
        let arn = created.training_job_arn().unwrap_or(&job.name);
        write(log, &format!("created {arn}")).await;
        let mut job_logs = self.job_logs(job.settings.region.as_deref(), &job.name).await?;

        let mut reported = 0;
        let mut wait = self.polling.first;
        let mut watching = true;
        loop {
            let described = client
                .describe_training_job()
                .training_job_name(&job.name)
                .send()
                .await
                .map_err(|e| Error::of("DescribeTrainingJob", e))?;
            let status = training_job_status(described.training_job_status());
            let transitions = described.secondary_status_transitions();
            for transition in transitions.iter().skip(reported) {
                let secondary = secondary_status(transition.status());
                let message = transition.status_message().map(str::to_owned);
                let said = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                write(log, &format!("training job {}: {secondary}{said}", job.name)).await;
                let _ = progress.send(Progress { status, secondary, message });
            }
            reported = reported.max(transitions.len());
            if let Some(job_logs) = &mut job_logs {
                job_logs.follow(log).await;
            }
            if status.is_finished() {
                return outcome(&described, status);
            }
            let stop = tokio::select! {
                _ = tokio::time::sleep(Polling::jittered(wait)) => false,
                // Watched until it turns true or its sender goes (then nothing can cancel).
                cancelled = cancel.wait_for(|c| *c), if watching => {
                    watching = false;
                    cancelled.is_ok()
                }
            };
            if stop {
                write(log, &format!("stopping training job {}", job.name)).await;
                client
                    .stop_training_job()
                    .training_job_name(&job.name)
                    .send()
                    .await
                    .map_err(|e| Error::of("StopTrainingJob", e))?;
            }
            wait = self.polling.next(wait);
        }
    }
}

fn channel(name: &str, uri: &str) -> Channel {
    let source = S3DataSource::builder()
        .s3_data_type(S3DataType::S3Prefix)
        .s3_uri(uri)
        .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
        .build();
    Channel::builder().channel_name(name).data_source(DataSource::builder().s3_data_source(source).build()).build()
}

/// How the described job ended.
fn outcome(described: &DescribeTrainingJobOutput, status: TrainingJobStatus) -> Result<ManagedOutcome, Error> {
    let secondary = secondary_status(described.secondary_status());
    let end = match (status, secondary) {
        (TrainingJobStatus::Completed, _) => End::Completed,
        (TrainingJobStatus::Stopped, SecondaryStatus::MaxRuntimeExceeded) => End::MaxRuntimeExceeded,
        (TrainingJobStatus::Stopped, _) => End::Stopped,
        _ => End::Failed,
    };
    let metrics: BTreeMap<String, f64> = described
        .final_metric_data_list()
        .iter()
        .filter_map(|m| Some((m.metric_name()?.to_owned(), f64::from(m.value()?))))
        .collect();
    let model_uri = described.model_artifacts().and_then(|a| a.s3_model_artifacts()).map(str::to_owned);
    if end == End::Completed && model_uri.is_none() {
        let what = "ModelArtifacts for a completed job";
        return Err(Error::Incomplete { api: crate::Api::SageMaker, operation: "DescribeTrainingJob", what });
    }
    Ok(ManagedOutcome { end, failure_reason: described.failure_reason().map(str::to_owned), metrics, model_uri })
}

fn training_job_status(status: Option<&sm::TrainingJobStatus>) -> TrainingJobStatus {
    match status {
        Some(sm::TrainingJobStatus::Completed) => TrainingJobStatus::Completed,
        Some(sm::TrainingJobStatus::Failed) => TrainingJobStatus::Failed,
        Some(sm::TrainingJobStatus::Stopping) => TrainingJobStatus::Stopping,
        Some(sm::TrainingJobStatus::Stopped) => TrainingJobStatus::Stopped,
        _ => TrainingJobStatus::InProgress,
    }
}

fn secondary_status(status: Option<&sm::SecondaryStatus>) -> SecondaryStatus {
    use sm::SecondaryStatus as S;
    match status {
        Some(S::Completed) => SecondaryStatus::Completed,
        Some(S::Downloading) => SecondaryStatus::Downloading,
        Some(S::DownloadingTrainingImage) => SecondaryStatus::DownloadingTrainingImage,
        Some(S::Failed) => SecondaryStatus::Failed,
        Some(S::Interrupted) => SecondaryStatus::Interrupted,
        Some(S::LaunchingMlInstances) => SecondaryStatus::LaunchingMLInstances,
        Some(S::MaxRuntimeExceeded) => SecondaryStatus::MaxRuntimeExceeded,
        Some(S::MaxWaitTimeExceeded) => SecondaryStatus::MaxWaitTimeExceeded,
        Some(S::PreparingTrainingStack) => SecondaryStatus::PreparingTrainingStack,
        Some(S::Restarting) => SecondaryStatus::Restarting,
        Some(S::Stopped) => SecondaryStatus::Stopped,
        Some(S::Stopping) => SecondaryStatus::Stopping,
        Some(S::Training) => SecondaryStatus::Training,
        Some(S::Updating) => SecondaryStatus::Updating,
        Some(S::Uploading) => SecondaryStatus::Uploading,
        Some(S::Starting) => SecondaryStatus::Starting,
        // A status newer than this SDK: the job is under way.
        _ => SecondaryStatus::Pending,
    }
}

pub(crate) async fn write(log: &mut (dyn AsyncWrite + Unpin + Send), line: &str) {
    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
}

#[cfg(test)]
mod tests {
    //! The paths moto cannot show (it completes every job at once and has no StopTrainingJob):
    //! the SDK's own mocks answer as SageMaker does.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use aws_sdk_sagemaker::Client;
    use aws_sdk_sagemaker::error::ErrorMetadata;
    use aws_sdk_sagemaker::operation::create_training_job::{CreateTrainingJobError, CreateTrainingJobOutput};
    use aws_sdk_sagemaker::operation::stop_training_job::StopTrainingJobOutput;
    use aws_sdk_sagemaker::types::{MetricData, ModelArtifacts, SecondaryStatusTransition};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn job() -> ManagedJob {
        ManagedJob {
            name: "iris-7".into(),
            image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/iris:7".into(),
            settings: pipeline::SageMakerTraining {
                role: "arn:aws:iam::123456789012:role/SageMakerRole".into(),
                instance_count: 1,
                volume_size_gb: 30,
                region: None,
            },
            instance_type: "ml.m5.large".into(),
            max_runtime: Duration::from_secs(3600),
            channels: [("training".to_owned(), "s3://data/iris/train.csv".to_owned())].into(),
            hyperparameters: [("max_leaf_nodes".to_owned(), "5".to_owned())].into(),
            output_path: "s3://models/team".into(),
            metric_definitions: Vec::new(),
        }
    }

    fn created() -> aws_smithy_mocks::Rule {
        mock!(Client::create_training_job)
            .match_requests(|r| {
                r.training_job_name() == Some("iris-7")
                    && r.hyper_parameters().is_some_and(|h| h["max_leaf_nodes"] == "5")
                    && r.input_data_config()[0].channel_name() == Some("training")
            })
            .then_output(|| {
                CreateTrainingJobOutput::builder().training_job_arn("arn:aws:sagemaker:::training-job/iris-7").build()
            })
    }

    fn transition(status: sm::SecondaryStatus, message: &str) -> SecondaryStatusTransition {
        SecondaryStatusTransition::builder().status(status).status_message(message).build()
    }

    fn sagemaker(client: Client) -> SageMaker {
        SageMaker::with_client(client, Polling { first: Duration::from_millis(1), longest: Duration::from_millis(5) })
    }

    async fn train(
        sagemaker: &SageMaker,
        cancel: watch::Receiver<bool>,
    ) -> (Result<ManagedOutcome, Error>, Vec<Progress>, String) {
        let (progress, mut reported) = mpsc::unbounded_channel();
        let mut log = Vec::new();
        let ended = sagemaker.train(&job(), progress, &mut log, cancel).await;
        let mut all = Vec::new();
        while let Ok(p) = reported.try_recv() {
            all.push(p);
        }
        (ended, all, String::from_utf8(log).unwrap())
    }

    #[tokio::test]
    async fn a_job_is_followed_through_each_secondary_status_to_its_failure_reason() {
        let described = mock!(Client::describe_training_job)
            .sequence()
            .output(|| {
                DescribeTrainingJobOutput::builder()
                    .training_job_status(sm::TrainingJobStatus::InProgress)
                    .secondary_status_transitions(transition(
                        sm::SecondaryStatus::Starting,
                        "Preparing the instances for training",
                    ))
                    .build()
            })
            .output(|| {
                DescribeTrainingJobOutput::builder()
                    .training_job_status(sm::TrainingJobStatus::Failed)
                    .secondary_status(sm::SecondaryStatus::Failed)
                    .failure_reason("AlgorithmError: ExecuteUserScriptError: train exited 1")
                    .secondary_status_transitions(transition(
                        sm::SecondaryStatus::Starting,
                        "Preparing the instances for training",
                    ))
                    .secondary_status_transitions(transition(
                        sm::SecondaryStatus::Training,
                        "Training image download completed",
                    ))
                    .secondary_status_transitions(transition(sm::SecondaryStatus::Failed, "Training job failed"))
                    .build()
            })
            .build();
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, &[&created(), &described]);
        let (ended, progress, log) = train(&sagemaker(client), watch::channel(false).1).await;
        let ended = ended.unwrap();
        assert_eq!(ended.end, End::Failed);
        assert_eq!(ended.failure_reason.as_deref(), Some("AlgorithmError: ExecuteUserScriptError: train exited 1"));
        let seen: Vec<SecondaryStatus> = progress.iter().map(|p| p.secondary).collect();
        assert_eq!(
            seen,
            [SecondaryStatus::Starting, SecondaryStatus::Training, SecondaryStatus::Failed],
            "each once, in order"
        );
        assert!(log.contains("training job iris-7: Training: Training image download completed"), "{log}");
    }

    #[tokio::test]
    async fn a_completed_job_gives_its_model_and_final_metrics() {
        let described = mock!(Client::describe_training_job).then_output(|| {
            DescribeTrainingJobOutput::builder()
                .training_job_status(sm::TrainingJobStatus::Completed)
                .secondary_status(sm::SecondaryStatus::Completed)
                .model_artifacts(
                    ModelArtifacts::builder().s3_model_artifacts("s3://models/team/iris-7/output/model.tar.gz").build(),
                )
                .final_metric_data_list(MetricData::builder().metric_name("train:accuracy").value(0.96).build())
                .build()
        });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, &[&created(), &described]);
        let ended = train(&sagemaker(client), watch::channel(false).1).await.0.unwrap();
        assert_eq!(ended.end, End::Completed);
        assert_eq!(ended.model_uri.as_deref(), Some("s3://models/team/iris-7/output/model.tar.gz"));
        assert!((ended.metrics["train:accuracy"] - 0.96).abs() < 1e-6, "{:?}", ended.metrics);
    }

    #[tokio::test]
    async fn a_cancelled_job_is_stopped_and_followed_until_sagemaker_says_stopped() {
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = mock!(Client::stop_training_job).then_compute_output({
            let stopped = stopped.clone();
            move |r| {
                assert_eq!(r.training_job_name(), Some("iris-7"));
                stopped.store(true, Ordering::SeqCst);
                StopTrainingJobOutput::builder().build()
            }
        });
        let described = mock!(Client::describe_training_job).then_compute_output({
            let stopped = stopped.clone();
            move |_| {
                let (status, secondary) = if stopped.load(Ordering::SeqCst) {
                    (sm::TrainingJobStatus::Stopped, sm::SecondaryStatus::Stopped)
                } else {
                    (sm::TrainingJobStatus::InProgress, sm::SecondaryStatus::Training)
                };
                DescribeTrainingJobOutput::builder()
                    .training_job_status(status)
                    .secondary_status(secondary)
                    .failure_reason("Stopped by user")
                    .build()
            }
        });
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, &[&created(), &described, &stop]);
        let (cancel, cancelled) = watch::channel(false);
        let sagemaker = sagemaker(client);
        let ran = tokio::spawn(async move { train(&sagemaker, cancelled).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!stopped.load(Ordering::SeqCst), "nothing stops a job before it is cancelled");
        cancel.send(true).unwrap();
        let (ended, _, log) = tokio::time::timeout(Duration::from_secs(10), ran).await.unwrap().unwrap();
        assert_eq!(ended.unwrap().end, End::Stopped);
        assert_eq!(stop.num_calls(), 1, "stopped once");
        assert!(log.contains("stopping training job iris-7"), "{log}");
    }

    #[tokio::test]
    async fn refused_credentials_say_so_and_nothing_is_described() {
        let refused = mock!(Client::create_training_job).then_error(|| {
            CreateTrainingJobError::generic(
                ErrorMetadata::builder()
                    .code("UnrecognizedClientException")
                    .message("The security token included in the request is invalid.")
                    .build(),
            )
        });
        let described =
            mock!(Client::describe_training_job).then_output(|| DescribeTrainingJobOutput::builder().build());
        let client = mock_client!(aws_sdk_sagemaker, RuleMode::MatchAny, &[&refused, &described]);
        let error = train(&sagemaker(client), watch::channel(false).1).await.0.unwrap_err();
        assert!(matches!(error, Error::Credentials { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("refused the AWS credentials") && message.contains("AWS_ACCESS_KEY_ID"), "{message}");
        assert_eq!(described.num_calls(), 0);
    }

    #[test]
    fn instance_types_are_sagemakers_own() {
        let sagemaker = SageMaker::new();
        assert!(sagemaker.check_instance_type("ml.m5.large").is_ok());
        let unknown = sagemaker.check_instance_type("ml.m5.huge").unwrap_err();
        assert!(
            unknown.contains("no training instance type `ml.m5.huge`") && unknown.contains("ml.m5.xlarge"),
            "{unknown}"
        );
    }
}
