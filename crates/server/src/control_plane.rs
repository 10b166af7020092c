//! SageMaker's control-plane API on the server's listener: `POST /` with `X-Amz-Target:
//! SageMaker.<Operation>` and a JSON body (AWS's JSON 1.1 protocol), so that the AWS CLI and
//! boto3 pointed at sagebrush with `--endpoint-url` manage its endpoints. Each operation reads
//! SageMaker's input shape, calls the service layer, and answers SageMaker's output shape; errors
//! are SageMaker's (`{"__type": "ValidationException", "message": ...}`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ServiceError;
use crate::service::{self, EndpointView, Service, WeightsRequest};

/// The account in the ARNs sagebrush answers with: a machine of its own, not an AWS account.
pub const ACCOUNT: &str = "000000000000";
const TARGET: &str = "x-amz-target";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The operations answered, for the README's table and the error naming what is there.
pub const OPERATIONS: &[&str] =
    &["ListEndpoints", "DescribeEndpoint", "DeleteEndpoint", "UpdateEndpointWeightsAndCapacities"];

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

async fn dispatch(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(operation) = operation(&headers) else {
        return Fault::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "POST / is SageMaker's API: name the operation in X-Amz-Target: SageMaker.<Operation>",
        )
        .into_response();
    };
    match answer(&service, operation, &region(&headers), &body).await {
        Ok(output) => ([(header::CONTENT_TYPE, JSON_1_1)], output.to_string()).into_response(),
        Err(fault) => fault.into_response(),
    }
}

async fn answer(service: &Service, operation: &str, region: &str, body: &[u8]) -> Result<Value, Fault> {
    match operation {
        "ListEndpoints" => list_endpoints(service, region, input(body)?).await,
        "DescribeEndpoint" => describe_endpoint(service, region, input(body)?).await,
        "DeleteEndpoint" => delete_endpoint(service, region, input(body)?).await,
        "UpdateEndpointWeightsAndCapacities" => update_weights(service, region, input(body)?).await,
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
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|scope| scope.split('/').nth(2))
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or("us-east-1")
        .to_owned()
}

fn arn(region: &str, name: &str) -> String {
    format!("arn:aws:sagemaker:{region}:{ACCOUNT}:endpoint/{name}")
}

/// SageMaker's time: seconds since the epoch, as a JSON number.
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// An endpoint this server serves is in service; one only recorded (served by another server on
/// the same database, or not restored) is out of service here.
fn status(view: &EndpointView) -> &'static str {
    if view.url.is_some() { "InService" } else { "OutOfService" }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEndpointsInput {
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

async fn list_endpoints(service: &Service, region: &str, input: ListEndpointsInput) -> Result<Value, Fault> {
    let mut views = service.endpoints().await?;
    // SageMaker's default order: the newest first.
    views.sort_by_key(|v| std::cmp::Reverse(v.record.updated_at));
    let summaries: Vec<EndpointSummary> = views
        .iter()
        .filter(|v| input.name_contains.as_deref().is_none_or(|part| v.record.name.contains(part)))
        .filter(|v| input.status_equals.as_deref().is_none_or(|s| s == status(v)))
        .map(|v| EndpointSummary {
            endpoint_name: v.record.name.clone(),
            endpoint_arn: arn(region, &v.record.name),
            creation_time: seconds(v.record.updated_at),
            last_modified_time: seconds(v.record.updated_at),
            endpoint_status: status(v),
        })
        .collect();
    let start = match input.next_token.as_deref() {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| validation(format!("NextToken {token:?} is not one this server gave")))?,
        None => 0,
    };
    let page = input.max_results.unwrap_or(100).clamp(1, 100);
    let end = (start + page).min(summaries.len());
    let mut output = serde_json::json!({ "Endpoints": summaries.get(start..end).unwrap_or_default() });
    if end < summaries.len() {
        output["NextToken"] = Value::String(end.to_string());
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointInput {
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

async fn describe_endpoint(service: &Service, region: &str, input: EndpointInput) -> Result<Value, Fault> {
    let view = service
        .endpoint(&endpoint_name(&input.endpoint_name)?)
        .await
        .map_err(|e| not_found(e, region, &input.endpoint_name))?;
    let variants: Vec<ProductionVariantSummary> = view
        .variants
        .iter()
        .map(|v| ProductionVariantSummary {
            variant_name: v.name.clone(),
            current_weight: v.weight,
            desired_weight: v.weight,
            current_instance_count: v.instances,
            desired_instance_count: v.instances,
        })
        .collect();
    let name = &view.record.name;
    Ok(serde_json::json!({
        "EndpointName": name,
        "EndpointArn": arn(region, name),
        // sagebrush keeps no endpoint configurations apart from endpoints: each is its own.
        "EndpointConfigName": name,
        "ProductionVariants": variants,
        "EndpointStatus": status(&view),
        "CreationTime": seconds(view.record.updated_at),
        "LastModifiedTime": seconds(view.record.updated_at),
    }))
}

async fn delete_endpoint(service: &Service, region: &str, input: EndpointInput) -> Result<Value, Fault> {
    let name = endpoint_name(&input.endpoint_name)?;
    service.delete_endpoint(&name).await.map_err(|e| not_found(e, region, &input.endpoint_name))?;
    Ok(serde_json::json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateWeightsInput {
    endpoint_name: String,
    desired_weights_and_capacities: Vec<DesiredWeightAndCapacity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DesiredWeightAndCapacity {
    variant_name: String,
    desired_weight: Option<f64>,
    desired_instance_count: Option<u32>,
}

async fn update_weights(service: &Service, region: &str, input: UpdateWeightsInput) -> Result<Value, Fault> {
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
    Ok(serde_json::json!({ "EndpointArn": arn(region, &name) }))
}

fn endpoint_name(text: &str) -> Result<names::Name, Fault> {
    service::name("endpoint", text).map_err(|e| {
        let value = names::excerpt(text, 63);
        validation(format!(
            "1 validation error detected: Value '{value}' at 'endpointName' failed to satisfy constraint: {}",
            e.message
        ))
    })
}

/// SageMaker answers a missing endpoint with a ValidationException (its `endpoint-deleted` waiter counts on it).
fn not_found(e: ServiceError, region: &str, name: &str) -> Fault {
    if e.status == StatusCode::NOT_FOUND {
        validation(format!("Could not find endpoint \"{}\".", arn(region, name)))
    } else {
        Fault::from(e)
    }
}

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
        let message = match &e.hint {
            Some(hint) => format!("{}; {hint}", e.message),
            None => e.message.clone(),
        };
        let (status, code) = match e.status {
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
