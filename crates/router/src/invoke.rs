//! The HTTP surface: SageMaker's InvokeEndpoint on one listener for every endpoint, and the single-model `/ping` + `/invocations` contract.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use std::time::Instant;

use names::Name;

use crate::feedback::Answered;
use crate::upstream::Failure;
use crate::{Instance, LoadError, ModelCache, Router, Upstream, Variant};

/// SageMaker's payload limit for InvokeEndpoint.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

const INVOKED_VARIANT: &str = "x-amzn-invoked-production-variant";
pub(crate) const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";
const TARGET_VARIANT: &str = "x-amzn-sagemaker-target-variant";
const TARGET_MODEL: &str = "x-amzn-sagemaker-target-model";
/// Every answer carries one (the caller's, or a new one), so ground truth can be sent back for it.
pub const INFERENCE_ID: &str = "x-amzn-sagemaker-inference-id";

/// Routes for `POST /endpoints/{name}/invocations` and `GET /ping`.
pub fn routes(router: Arc<Router>) -> axum::Router {
    axum::Router::new()
        .route("/endpoints/{name}/invocations", post(invoke_endpoint))
        .route("/endpoints/{name}/feedback", post(feedback))
        .route("/ping", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(router)
}

/// The container contract for one built-in model: `GET /ping` and `POST /invocations`.
pub fn single_model_routes(model: Arc<builtin::Model>) -> axum::Router {
    axum::Router::new().route("/ping", get(|| async { StatusCode::OK })).route(
        "/invocations",
        post(move |headers: HeaderMap, body: Body| {
            let model = model.clone();
            async move {
                match read_body(body).await {
                    Ok(bytes) => predict_builtin(&model, &headers, &bytes),
                    Err(response) => response,
                }
            }
        }),
    )
}

async fn metrics(State(router): State<Arc<Router>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], router.metrics_text()).into_response()
}

async fn invoke_endpoint(
    State(router): State<Arc<Router>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(endpoint) = router.get(&name) else {
        // SageMaker's answer for an unknown endpoint: a 400, which boto3 raises as ValidationError.
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            &format!("Endpoint {name} not found. List endpoints with `sagebrush endpoints`."),
        );
    };
    let bytes = match read_body_within(body, router.body_timeout).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let target = headers.get(TARGET_VARIANT).and_then(|v| v.to_str().ok());
    let Some(variant) = endpoint.choose(target) else {
        let names: Vec<&str> = endpoint.variants.iter().map(|(v, _)| v.name.as_str()).collect();
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            &format!("endpoint {name} has no variant {:?}; its variants are {names:?}", target.unwrap_or_default()),
        );
    };
    let inference_id = match headers.get(INFERENCE_ID) {
        Some(id) => id.clone(),
        None => new_inference_id(),
    };
    let capture = router.capture(&name).filter(|c| c.sampled());
    let request_body = capture.as_ref().map(|_| bytes.clone());
    // An A/B test needs to know who answered what, to count the ground truth sent back later.
    let remember = endpoint.variants.len() > 1;
    let started = Instant::now();
    let mut response = invoke(&router, variant, &headers, bytes, 0).await;
    variant.stats.record(counted_status(&response), started.elapsed());
    response.headers_mut().insert(INVOKED_VARIANT, variant.header.clone());
    response.headers_mut().insert(INFERENCE_ID, inference_id);
    if capture.is_none() && !(remember && response.status().is_success()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(answer) = axum::body::to_bytes(body, usize::MAX).await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "reading the model's answer failed");
    };
    let id = parts.headers.get(INFERENCE_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if let (Some(capture), Some(request_body)) = (capture, request_body) {
        capture.record(capture_record(&name, &variant.name, &id, &headers, &request_body, &parts, &answer));
    }
    if remember && parts.status.is_success() {
        router.answers.remember(id, Answered::new(name, variant.name.to_string(), &answer));
    }
    Response::from_parts(parts, Body::from(answer))
}

/// `POST /endpoints/{name}/feedback`: ground truth for earlier answers, `{"inference_id": ..., "label": ...}` or a list of them.
async fn feedback(State(router): State<Arc<Router>>, Path(name): Path<String>, body: Body) -> Response {
    let body = match read_body_within(body, router.body_timeout).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    #[derive(serde::Deserialize)]
    struct Label {
        inference_id: String,
        label: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Labels {
        One(Label),
        Many(Vec<Label>),
    }
    let labels = match serde_json::from_slice::<Labels>(&body) {
        Ok(Labels::One(label)) => vec![label],
        Ok(Labels::Many(labels)) => labels,
        Err(e) => {
            let message =
                format!("feedback is {{\"inference_id\": \"...\", \"label\": \"...\"}} or a list of them: {e}");
            return error(StatusCode::BAD_REQUEST, "ValidationError", &message);
        }
    };
    let Some(endpoint) = router.get(&name) else {
        return error(StatusCode::NOT_FOUND, "ValidationError", &format!("Endpoint {name} not found."));
    };
    let mut accepted = 0;
    let mut unknown = Vec::new();
    for label in labels {
        let answered = router.answers.take(&label.inference_id).filter(|a| a.endpoint == name);
        let variant = answered.as_ref().and_then(|a| endpoint.variants.iter().find(|(v, _)| v.name == a.variant));
        match (answered, variant) {
            (Some(answered), Some((variant, _))) => {
                variant.accuracy.count(answered.is(&label.label));
                accepted += 1;
            }
            _ => unknown.push(names::excerpt(&label.inference_id, 64)),
        }
    }
    axum::Json(serde_json::json!({ "accepted": accepted, "unknown": unknown })).into_response()
}
/// A fresh id for `X-Amzn-SageMaker-Inference-Id`: 128 random bits in hex.
fn new_inference_id() -> HeaderValue {
    let mut text = [0u8; 32];
    let bits = fastrand::u128(..);
    for (i, byte) in text.iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[((bits >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// One line of data capture: the request and the answer.
fn capture_record(
    endpoint: &str,
    variant: &str,
    inference_id: &str,
    headers: &HeaderMap,
    request_body: &[u8],
    parts: &axum::http::response::Parts,
    answer: &[u8],
) -> serde_json::Value {
    let text = |value: Option<&HeaderValue>| value.and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    serde_json::json!({
        "time_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        "endpoint": endpoint,
        "variant": variant,
        "inference_id": inference_id,
        "request": { "content_type": text(headers.get(header::CONTENT_TYPE)), "body": String::from_utf8_lossy(request_body) },
        "response": { "status": parts.status.as_u16(), "content_type": text(parts.headers.get(header::CONTENT_TYPE)), "body": String::from_utf8_lossy(answer) },
    })
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    read_body_within(body, crate::DEFAULT_BODY_TIMEOUT).await
}

/// The whole body, if it is within the payload limit and arrives within `timeout`.
async fn read_body_within(body: Body, timeout: std::time::Duration) -> Result<Bytes, Response> {
    let Ok(read) = tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_PAYLOAD_BYTES)).await else {
        return Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "ValidationError",
            &format!("the request body did not arrive within {} s", timeout.as_secs_f64()),
        ));
    };
    read.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ValidationError",
            &format!(
                "the request body is larger than {MAX_PAYLOAD_BYTES} bytes (6 MB); split it into smaller requests"
            ),
        )
    })
}

fn predict_builtin(model: &builtin::Model, headers: &HeaderMap, body: &[u8]) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("text/csv") {
        let shown = if content_type.is_empty() { "none" } else { content_type };
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "ValidationError",
            &format!(
                "this model takes text/csv (one row of features per line); the request's Content-Type was {shown}"
            ),
        );
    }
    let mut out = Vec::with_capacity(16 + body.len() / 4);
    match model.predict_csv(body, &mut out) {
        Ok(_) => ([(header::CONTENT_TYPE, "text/csv")], out).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "ValidationError", &e.to_string()),
    }
}

/// Answers with the endpoint's instances in turn. A request that an instance dropped
/// without answering (one that died since the last health check) goes to the next
/// instance, so a dead instance costs no failed request while another one is up. A
/// timeout is not retried: the model may be working on it still.
async fn invoke(router: &Router, variant: &Variant, headers: &HeaderMap, body: Bytes, depth: usize) -> Response {
    let mut last_error = None;
    for instance in variant.turn() {
        match instance.as_ref() {
            Instance::Builtin(model) => return relay(predict_builtin(model, headers, &body)).await,
            Instance::MultiModel(cache) => return predict_target_model(cache, headers, &body).await,
            Instance::Chain(steps) => return Box::pin(invoke_chain(router, steps, headers, body, depth)).await,
            Instance::MultiModelServer { upstream, cache, .. } => {
                return invoke_target_model(upstream, cache, headers, body).await;
            }
            Instance::Http { upstream, .. } => match upstream.invoke(headers, body.clone()).await {
                Ok(answer) => return relay(answer).await,
                // A model still working on it when the time is up is not retried; one never reached is.
                Err(Failure::TimedOut) => return unreachable_model(&Failure::TimedOut),
                Err(e) => last_error = Some(e),
            },
        }
    }
    match last_error {
        Some(e) => unreachable_model(&e),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the endpoint has no instances"),
    }
}

/// Deeper than this, a pipeline of pipelines is taken to loop.
const MAX_CHAIN_DEPTH: usize = 8;

/// Sends the request through each step's endpoint; the first step that does not answer 2xx answers for all.
async fn invoke_chain(router: &Router, steps: &[Name], headers: &HeaderMap, body: Bytes, depth: usize) -> Response {
    if depth >= MAX_CHAIN_DEPTH {
        let message = format!("the inference pipeline nests more than {MAX_CHAIN_DEPTH} deep; does it include itself?");
        return error(StatusCode::BAD_REQUEST, "ValidationError", &message);
    }
    let mut headers = headers.clone();
    let mut body = body;
    let mut last = None;
    for step in steps {
        let Some(endpoint) = router.get(step) else {
            return model_error(0, &format!("inference pipeline step {step} is not an endpoint (any more)"));
        };
        let Some(variant) = endpoint.choose(None) else {
            return model_error(0, &format!("inference pipeline step {step} has no variant"));
        };
        let response = invoke(router, variant, &headers, body, depth + 1).await;
        if !response.status().is_success() {
            return response;
        }
        if let Some(content_type) = response.headers().get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        let (parts, answer) = response.into_parts();
        body = match axum::body::to_bytes(answer, MAX_PAYLOAD_BYTES).await {
            Ok(bytes) => bytes,
            Err(e) => return model_error(0, &format!("reading step {step}'s answer: {e}")),
        };
        last = Some(parts);
    }
    match last {
        Some(parts) => Response::from_parts(parts, Body::from(body)),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "the inference pipeline has no steps"),
    }
}

async fn predict_target_model(cache: &ModelCache, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(name) = target_model(headers) else { return missing_target_model() };
    match cache.get(name).await {
        Ok(model) => relay(predict_builtin(&model, headers, body)).await,
        Err(e) => load_error(e),
    }
}

/// Loads the target model into the model server if it is not loaded, then invokes it there.
async fn invoke_target_model(
    upstream: &Upstream,
    cache: &ModelCache<()>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(name) = target_model(headers) else { return missing_target_model() };
    match cache.get(name).await {
        Ok(_) => match upstream.post_to(&format!("/models/{name}/invoke"), headers, body).await {
            Ok(answer) => relay(answer).await,
            Err(e) => unreachable_model(&e),
        },
        Err(e) => load_error(e),
    }
}

fn target_model(headers: &HeaderMap) -> Option<&str> {
    headers.get(TARGET_MODEL).and_then(|v| v.to_str().ok())
}

fn missing_target_model() -> Response {
    let message = "this is a multi-model endpoint: name the model in the X-Amzn-SageMaker-Target-Model header";
    error(StatusCode::BAD_REQUEST, "ValidationError", message)
}

/// A target model that cannot be loaded is the request's fault, as SageMaker answers it.
fn load_error(e: LoadError) -> Response {
    match e {
        LoadError::NotFound(why) | LoadError::Invalid(why) => error(StatusCode::BAD_REQUEST, "ValidationError", &why),
        LoadError::NotReady(why) => error(StatusCode::TOO_MANY_REQUESTS, "ModelNotReadyException", &why),
    }
}

fn unreachable_model(failure: &Failure) -> Response {
    match failure {
        Failure::TimedOut => model_error(
            0,
            &format!(
                "Your invocation timed out while waiting for a response from container primary ({failure}). \
                 Review the endpoint's log (sagebrush logs), resolve the issue, and try again."
            ),
        ),
        Failure::Failed(why) => model_error(0, &format!("the model server did not answer: {why}")),
    }
}

async fn relay(answer: Response) -> Response {
    let (parts, body) = answer.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await {
        Ok(body) => body,
        Err(e) => return model_error(parts.status.as_u16(), &format!("reading the model server's answer: {e}")),
    };
    // Any answer but a 2xx is the model's error, a 415 for a content type it does not take as much
    // as a 500: SageMaker answers it as ModelError with the model's status and words.
    if !parts.status.is_success() {
        return model_error(parts.status.as_u16(), &String::from_utf8_lossy(&body));
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = parts.status;
    for name in [header::CONTENT_TYPE, header::HeaderName::from_static(CUSTOM_ATTRIBUTES)] {
        if let Some(value) = parts.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// The status a model answered with (0: none, it timed out or was not reached), carried by a
/// ModelError so that the endpoint's counts say whose error it was.
#[derive(Clone, Copy)]
struct ModelStatus(u16);

/// SageMaker's ModelError (424): `Received client error (415) from primary with message "..."`.
fn model_error(original_status: u16, message: &str) -> Response {
    let side = if (400..500).contains(&original_status) { "client" } else { "server" };
    let body = serde_json::json!({
        "code": "ModelError",
        "message": format!("Received {side} error ({original_status}) from primary with message \"{}\".", message.trim()),
        "OriginalStatusCode": original_status,
        "OriginalMessage": message,
    });
    let mut response = json_error(StatusCode::FAILED_DEPENDENCY, "ModelError", body);
    response.extensions_mut().insert(ModelStatus(original_status));
    response
}

/// What an invocation counts as: a model's 4xx with the 4xx, its 5xx, a timeout or no answer
/// with the 5xx, whatever SageMaker's status for it (424).
fn counted_status(response: &Response) -> u16 {
    match response.extensions().get::<ModelStatus>() {
        Some(ModelStatus(status @ 400..=499)) => *status,
        Some(_) => 500,
        None => response.status().as_u16(),
    }
}

/// A SageMaker-shaped error: botocore reads the code from `x-amzn-errortype` and the text from `message`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_error(status, code, serde_json::json!({ "code": code, "message": message }))
}

fn json_error(status: StatusCode, code: &str, body: serde_json::Value) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if let Ok(value) = HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_answer_but_a_2xx_is_a_model_error_counted_by_the_models_own_status() {
        let answer = |status: u16, body: &'static str| {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            response
        };
        for (status, side, counted) in [(415, "client", 415), (400, "client", 400), (503, "server", 500)] {
            let relayed = relay(answer(status, "no\n")).await;
            assert_eq!(relayed.status(), StatusCode::FAILED_DEPENDENCY);
            assert_eq!(relayed.headers()["x-amzn-errortype"], "ModelError");
            assert_eq!(counted_status(&relayed), counted, "a {status} counts as the model's {counted}");
            let body = axum::body::to_bytes(relayed.into_body(), usize::MAX).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["OriginalStatusCode"], status);
            assert_eq!(body["OriginalMessage"], "no\n");
            assert_eq!(body["message"], format!("Received {side} error ({status}) from primary with message \"no\"."));
        }
        let timed_out = unreachable_model(&Failure::TimedOut);
        assert_eq!(counted_status(&timed_out), 500, "a timeout is the model's failure");
        let ok = relay(answer(200, "setosa\n")).await;
        assert_eq!((ok.status(), counted_status(&ok)), (StatusCode::OK, 200));
    }
}
