//! SageMaker's control-plane API on the server's listener: `POST /` with `X-Amz-Target:
//! SageMaker.<Operation>` and a JSON body (AWS's JSON 1.1 protocol), so that the AWS CLI and
//! boto3 pointed at sagebrush with `--endpoint-url` manage its endpoints. Each operation reads
//! SageMaker's input shape, calls the service layer, and answers SageMaker's output shape; errors
//! are SageMaker's (`{"__type": "ValidationException", "message": ...}`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ServiceError;
use crate::auth::Caller;
use crate::service::Service;

mod endpoints;
mod models;
mod packages;
mod tags;
mod training;

/// The account in the ARNs sagebrush answers with: a machine of its own, not an AWS account.
pub const ACCOUNT: &str = "000000000000";
const TARGET: &str = "x-amz-target";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The operations answered, for the README's table and the error naming what is there.
pub const OPERATIONS: &[&str] = &[
    "CreateTrainingJob",
    "DescribeTrainingJob",
    "ListTrainingJobs",
    "StopTrainingJob",
    "CreateModel",
    "DescribeModel",
    "ListModels",
    "DeleteModel",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "ListEndpointConfigs",
    "DeleteEndpointConfig",
    "CreateEndpoint",
    "DescribeEndpoint",
    "ListEndpoints",
    "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities",
    "DeleteEndpoint",
    "CreateModelPackageGroup",
    "DescribeModelPackageGroup",
    "ListModelPackageGroups",
    "CreateModelPackage",
    "DescribeModelPackage",
    "ListModelPackages",
    "UpdateModelPackage",
    "AddTags",
    "ListTags",
    "DeleteTags",
];

/// Whether a request is for this API, which the authorization reads before the route does.
pub fn operation(headers: &HeaderMap) -> Option<&str> {
    headers.get(TARGET)?.to_str().ok()?.strip_prefix("SageMaker.")
}

/// Whether the operation only reads, so that a viewer's token may call it.
pub fn reads(operation: &str) -> bool {
    operation.starts_with("Describe") || operation.starts_with("List")
}

/// `POST /`, to be served behind the API's authorization.
pub(crate) fn routes() -> axum::Router<Service> {
    axum::Router::new().route("/", axum::routing::post(dispatch))
}

async fn dispatch(
    State(service): State<Service>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = crate::api::caller_of(caller);
    let Some(operation) = operation(&headers) else {
        return Fault::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "POST / is SageMaker's API: name the operation in X-Amz-Target: SageMaker.<Operation>",
        )
        .into_response();
    };
    match answer(&service, &caller, operation, &region(&headers), &body).await {
        Ok(output) => ([(header::CONTENT_TYPE, JSON_1_1)], output.to_string()).into_response(),
        Err(fault) => fault.into_response(),
    }
}

async fn answer(
    service: &Service,
    caller: &Caller,
    operation: &str,
    region: &str,
    body: &[u8],
) -> Result<Value, Fault> {
    match operation {
        "ListEndpoints" => endpoints::list(service, region, input(body)?).await,
        "DescribeEndpoint" => endpoints::describe(service, region, input(body)?).await,
        "DeleteEndpoint" => endpoints::delete(service, region, input(body)?).await,
        "UpdateEndpointWeightsAndCapacities" => endpoints::update_weights(service, region, input(body)?).await,
        "CreateEndpoint" => endpoints::create(service, region, input(body)?).await,
        "UpdateEndpoint" => endpoints::update(service, region, input(body)?).await,
        "CreateModel" => models::create_model(service, region, input(body)?).await,
        "DescribeModel" => models::describe_model(service, region, input(body)?).await,
        "ListModels" => models::list_models(service, region, input(body)?).await,
        "DeleteModel" => models::delete_model(service, region, input(body)?).await,
        "CreateEndpointConfig" => models::create_config(service, region, input(body)?).await,
        "DescribeEndpointConfig" => models::describe_config(service, region, input(body)?).await,
        "ListEndpointConfigs" => models::list_configs(service, region, input(body)?).await,
        "DeleteEndpointConfig" => models::delete_config(service, region, input(body)?).await,
        "CreateModelPackageGroup" => packages::create_group(service, region, input(body)?).await,
        "DescribeModelPackageGroup" => packages::describe_group(service, region, input(body)?).await,
        "ListModelPackageGroups" => packages::list_groups(service, region, input(body)?).await,
        "CreateModelPackage" => packages::create_package(service, region, input(body)?).await,
        "DescribeModelPackage" => packages::describe_package(service, region, input(body)?).await,
        "ListModelPackages" => packages::list_packages(service, region, input(body)?).await,
        "UpdateModelPackage" => packages::update_package(service, caller, region, input(body)?).await,
        "CreateTrainingJob" => training::create(service, caller, region, input(body)?).await,
        "DescribeTrainingJob" => training::describe(service, region, input(body)?).await,
        "ListTrainingJobs" => training::list(service, region, input(body)?).await,
        "StopTrainingJob" => training::stop(service, input(body)?).await,
        "AddTags" => tags::add(service, input(body)?).await,
        "ListTags" => tags::list(service, input(body)?).await,
        "DeleteTags" => tags::delete(service, input(body)?).await,
        other => Err(Fault::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("sagebrush does not answer SageMaker.{other}; it answers {}", OPERATIONS.join(", ")),
        )),
    }
}

/// The operation's input: its JSON body (empty is `{}`), with SageMaker's PascalCase names.
fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, Fault> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            Fault::new(StatusCode::BAD_REQUEST, "ValidationException", format!("1 validation error detected: {e}"))
        }
        _ => Fault::new(StatusCode::BAD_REQUEST, "SerializationException", format!("the body is not JSON: {e}")),
    })
}

/// The region of the request's SigV4 credential scope (`Credential=<key>/<date>/<region>/sagemaker/...`).
fn region(headers: &HeaderMap) -> String {
    crate::auth::sigv4_credential(headers).and_then(|c| c.region).unwrap_or("us-east-1").to_owned()
}

/// `arn:aws:sagemaker:<region>:<account>:<kind>/<name>`, `kind` being `endpoint`, `training-job`, ...
fn arn(region: &str, kind: &str, name: &str) -> String {
    format!("arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name}")
}

/// SageMaker's time: seconds since the epoch, as a JSON number.
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A caller the API's authorization refused, in SageMaker's words: an unknown or missing token is
/// an `UnrecognizedClientException`, a role short of the operation's an `AccessDeniedException`.
pub(crate) fn refused(refusal: ServiceError) -> Response {
    let code =
        if refusal.status == StatusCode::FORBIDDEN { "AccessDeniedException" } else { "UnrecognizedClientException" };
    Fault::new(StatusCode::BAD_REQUEST, code, refusal.one_line()).into_response()
}

/// One page of a List operation's results (at most 100), and the token of the next page.
fn page<'a, T>(
    items: &'a [T],
    max_results: Option<usize>,
    next_token: Option<&str>,
) -> Result<(&'a [T], Option<String>), Fault> {
    let start = match next_token {
        Some(token) => token
            .parse::<usize>()
            .ok()
            .filter(|start| *start <= items.len())
            .ok_or_else(|| validation(format!("NextToken {token:?} is not one this server gave")))?,
        None => 0,
    };
    let end = (start + max_results.unwrap_or(100).clamp(1, 100)).min(items.len());
    Ok((&items[start..end], (end < items.len()).then(|| end.to_string())))
}

/// SageMaker's words for a name that breaks its rule.
fn constraint(text: &str, field: &str, e: &ServiceError) -> Fault {
    let value = names::excerpt(text, 63);
    validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {}",
        e.message
    ))
}

/// A service error's message and hint as one SageMaker `message`.
fn validation(message: impl Into<String>) -> Fault {
    Fault::new(StatusCode::BAD_REQUEST, "ValidationException", message)
}

/// An error in SageMaker's JSON 1.1 shape.
#[derive(Debug)]
struct Fault {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Fault {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Fault {
        Fault { status, code, message: message.into() }
    }
}

/// The service's errors in SageMaker's terms: a caller's mistake is a ValidationException, a
/// conflict a ConflictException, anything else SageMaker's InternalFailure.
impl From<ServiceError> for Fault {
    fn from(e: ServiceError) -> Fault {
        let message = e.one_line();
        let (status, code) = match e.status {
            _ if e.code == "resource_in_use" => (StatusCode::BAD_REQUEST, "ResourceInUse"),
            StatusCode::CONFLICT => (StatusCode::BAD_REQUEST, "ConflictException"),
            status if status.is_client_error() => (StatusCode::BAD_REQUEST, "ValidationException"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
        };
        Fault::new(status, code, message)
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "message": self.message });
        (self.status, [(header::CONTENT_TYPE, JSON_1_1)], body.to_string()).into_response()
    }
}
