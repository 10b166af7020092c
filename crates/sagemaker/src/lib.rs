//! Amazon SageMaker and ECR as the engine's backends, through the official AWS SDK: a stage with
//! `backend = "sagemaker"` trains as a SageMaker training job or deploys to a SageMaker endpoint,
//! and a build stage with `registry = "ecr"` pushes to ECR ([`SageMaker`] is the engine's
//! [`engine::ManagedTraining`], [`engine::ManagedHosting`] and [`engine::ManagedRegistry`]).
//!
//! Credentials and the region come from the standard AWS chain (environment, profile, instance
//! role), the region also from the stage; `AWS_ENDPOINT_URL` points every call elsewhere (an
//! emulator, a VPC endpoint), and `SAGEBRUSH_ECR_PUSH_REGISTRY` sends the image's bytes to another
//! registry than ECR's own (a mirror; a registry on loopback in tests). Nothing of the credentials
//! is ever logged: errors carry the service's code and message only.

mod ecr;
mod hosting;
mod identity;
mod logs;
mod training;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Which AWS API a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    SageMaker,
    Ecr,
    Logs,
}

impl Api {
    /// The prefix of its IAM actions.
    fn iam(self) -> &'static str {
        match self {
            Api::SageMaker => "sagemaker",
            Api::Ecr => "ecr",
            Api::Logs => "logs",
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::SageMaker => "SageMaker",
            Api::Ecr => "ECR",
            Api::Logs => "CloudWatch Logs",
        })
    }
}

/// What a call to SageMaker or ECR failed with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service did not accept the credentials: wrong, expired, or without the permission.
    #[error(
        "{api} {operation} refused the AWS credentials ({code}: {message}); check AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or the profile in AWS_PROFILE, and that they may call {}:{operation}", api.iam()
    )]
    Credentials { api: Api, operation: &'static str, code: String, message: String },
    /// The service refused the request.
    #[error("{api} {operation}: {code}: {message}")]
    Service { api: Api, operation: &'static str, code: String, message: String },
    /// The request was not answered: no credentials found, no network, a timeout.
    #[error(
        "{api} {operation} could not be sent: {detail}; check that AWS credentials are set (environment, \
         ~/.aws, an instance role) and, for an endpoint other than AWS's, AWS_ENDPOINT_URL"
    )]
    Request { api: Api, operation: &'static str, detail: String },
    /// Neither the chain nor the stage names a region.
    #[error("no AWS region: set AWS_REGION, a region in the AWS profile, or region = \"...\" in the stage")]
    NoRegion,
    /// An endpoint did not come into service.
    #[error("endpoint {endpoint} {why}")]
    Endpoint { endpoint: String, why: String },
    /// The service's answer lacked what it always carries.
    #[error("{api} {operation} answered without {what}")]
    Incomplete { api: Api, operation: &'static str, what: &'static str },
}

/// The error codes that mean the credentials, not the request, are wrong.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "AccessDeniedException",
    "MissingAuthenticationToken",
];

impl Error {
    /// A SageMaker call's error.
    fn of<E: ProvideErrorMetadata + std::error::Error + 'static>(
        operation: &'static str,
        error: SdkError<E, aws_sdk_sagemaker::config::http::HttpResponse>,
    ) -> Error {
        Error::sdk(Api::SageMaker, operation, error)
    }

    fn sdk<E: ProvideErrorMetadata + std::error::Error + 'static>(
        api: Api,
        operation: &'static str,
        error: SdkError<E, aws_sdk_sagemaker::config::http::HttpResponse>,
    ) -> Error {
        match &error {
            SdkError::ServiceError(service) => {
                let (code, message) = code_and_message(service.err(), service.raw());
                // moto (and a proxy in front of AWS) refuses a key with a 403 of no JSON code.
                if CREDENTIAL_CODES.contains(&code.as_str()) || service.raw().status().as_u16() == 403 {
                    Error::Credentials { api, operation, code, message }
                } else {
                    Error::Service { api, operation, code, message }
                }
            }
            _ => Error::Request { api, operation, detail: DisplayErrorContext(&error).to_string() },
        }
    }
}

/// The error's code and message, or, when the answer was not in the service's shape, its HTTP
/// status and the start of its body.
pub(crate) fn code_and_message(
    error: &impl ProvideErrorMetadata,
    raw: &aws_sdk_sagemaker::config::http::HttpResponse,
) -> (String, String) {
    match error.code() {
        Some(code) => (code.to_owned(), error.message().unwrap_or_default().to_owned()),
        None => {
            let body = raw.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            (format!("HTTP {}", raw.status().as_u16()), body.trim().to_owned())
        }
    }
}

/// Refuses an instance type SageMaker does not have for `what` (training, hosting), naming the
/// ones of the same family.
pub(crate) fn known(values: &[&str], instance_type: &str, what: &str) -> Result<(), String> {
    if values.contains(&instance_type) {
        return Ok(());
    }
    let family = instance_type.rsplit_once('.').map_or(instance_type, |(family, _)| family);
    let alike: Vec<&str> = values.iter().copied().filter(|t| t.starts_with(family)).take(8).collect();
    let hint =
        if alike.is_empty() { "e.g. ml.m5.large, ml.c5.xlarge or ml.g5.xlarge".to_owned() } else { alike.join(", ") };
    Err(format!("SageMaker has no {what} instance type `{instance_type}`; it has {hint}"))
}

/// How often a job is described: the first wait, growing by half each time up to the longest,
/// each with up to a fifth of jitter either way so that many followers do not call in step.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    pub first: Duration,
    pub longest: Duration,
}

impl Default for Polling {
    fn default() -> Polling {
        Polling { first: Duration::from_secs(2), longest: Duration::from_secs(30) }
    }
}

impl Polling {
    fn next(&self, wait: Duration) -> Duration {
        (wait * 3 / 2).min(self.longest)
    }

    fn jittered(wait: Duration) -> Duration {
        wait.mul_f64(0.8 + 0.4 * fastrand::f64())
    }
}

/// SageMaker's clients, made when a stage first needs one (loading the AWS chain may probe an
/// instance's metadata service, so nothing is loaded by a server that never trains there).
pub struct SageMaker {
    polling: Polling,
    /// The chain's configuration per region asked for (`None`: the chain's own).
    configs: tokio::sync::Mutex<HashMap<Option<String>, aws_config::SdkConfig>>,
    /// A client given by a test, used for every region.
    fixed: Option<Client>,
}

impl SageMaker {
    /// Clients from the AWS chain.
    pub fn new() -> SageMaker {
        SageMaker { polling: Polling::default(), configs: Default::default(), fixed: None }
    }

    /// One client for every call (a test's, with canned answers), described as often as `polling` says.
    pub fn with_client(client: Client, polling: Polling) -> SageMaker {
        SageMaker { polling, configs: Default::default(), fixed: Some(client) }
    }

    /// What reads a job's CloudWatch logs; none for a test's client, whose answers are all canned.
    async fn job_logs(&self, region: Option<&str>, job: &str) -> Result<Option<logs::JobLogs>, Error> {
        if self.fixed.is_some() {
            return Ok(None);
        }
        let client = aws_sdk_cloudwatchlogs::Client::new(&self.config(region).await?);
        Ok(Some(logs::JobLogs::new(client, job)))
    }

    async fn client(&self, region: Option<&str>) -> Result<Client, Error> {
        match &self.fixed {
            Some(client) => Ok(client.clone()),
            None => Ok(Client::new(&self.config(region).await?)),
        }
    }

    /// The AWS chain's configuration, loaded once per region.
    async fn config(&self, region: Option<&str>) -> Result<aws_config::SdkConfig, Error> {
        let mut configs = self.configs.lock().await;
        let key = region.map(str::to_owned);
        if let Some(config) = configs.get(&key) {
            return Ok(config.clone());
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::NoRegion);
        }
        configs.insert(key, config.clone());
        Ok(config)
    }
}

impl Default for SageMaker {
    fn default() -> SageMaker {
        SageMaker::new()
    }
}
