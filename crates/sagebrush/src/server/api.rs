//! The HTTP API under `/api`: what the CLI asks a running server to do.
//!
//! Every error is `{"error": {"code", "message", "hint"}}` with a 4xx for the caller's mistakes;
//! names in the URL or the body are [`Name`]s, so a bad one is a 400 before anything is touched.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::Engine;
use names::Name;
use serde::Deserialize;

/// The largest request body the API takes.
const BODY_LIMIT: usize = 1024 * 1024;

pub fn routes(engine: Engine, body_timeout: Duration) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/api/projects", post(add_project).get(list_projects))
        .route("/api/projects/{name}", axum::routing::delete(remove_project))
        .route("/api/runs", post(submit_run).get(list_runs))
        .route("/api/runs/{project}/{number}", get(show_run))
        .route("/api/runs/{project}/{number}/retry", post(retry_run))
        .route("/api/runs/{project}/{number}/cancel", post(cancel_run))
        .route("/api/endpoints", get(list_endpoints))
        .route("/api/endpoints/{name}", axum::routing::delete(delete_endpoint))
        .route("/api/endpoints/{name}/deploy", post(deploy_endpoint))
        .route("/api/models", get(list_models))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
                .hint("see /api/runs, /api/endpoints, /api/models")
        })
        .with_state(engine)
        .layer(axum::middleware::from_fn_with_state(body_timeout, whole_body))
}

/// Reads a request's whole body before its route runs: at most [`BODY_LIMIT`], within `timeout`.
async fn whole_body(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(_)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {BODY_LIMIT} bytes"),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {} s", timeout.as_secs_f64()),
        )
        .into_response(),
    }
}

/// An answer of the API that is not a success.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    hint: Option<String>,
    /// Extra fields next to `error` (a deploy's events).
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), hint: None, extra: serde_json::Map::new() }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }

    fn with(mut self, key: &str, value: serde_json::Value) -> ApiError {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert(
            "error".to_owned(),
            serde_json::json!({ "code": self.code, "message": self.message, "hint": self.hint }),
        );
        (self.status, Json(serde_json::Value::Object(body))).into_response()
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> ApiError {
        let (status, code) = match &e {
            engine::Error::Pipeline(_) => (StatusCode::BAD_REQUEST, "invalid_pipeline"),
            engine::Error::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            engine::Error::UnknownProject(_) => (StatusCode::NOT_FOUND, "unknown_project"),
            engine::Error::Store(store::Error::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            engine::Error::Store(store::Error::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            engine::Error::RolledBack(_) => (StatusCode::CONFLICT, "rolled_back"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        engine::Error::from(e).into()
    }
}

type ApiResult = Result<Response, ApiError>;

/// A name from the URL or the body: a bad one is the caller's mistake, and never becomes a path.
fn name(what: &str, text: &str) -> Result<Name, ApiError> {
    Name::parse(text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", format!("{what}: {e}")))
}

/// A JSON body, with the API's error shape when it does not parse.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the request body is not what this route takes: {e}"),
        )
    })
}

#[derive(Deserialize)]
struct AddProject {
    path: std::path::PathBuf,
}

/// `POST /api/projects`: lets the server run the project in a folder from now on.
async fn add_project(State(engine): State<Engine>, body: Bytes) -> ApiResult {
    let request: AddProject = json_body(&body)?;
    let project = engine.add_project(&request.path).await?;
    Ok((StatusCode::CREATED, Json(project)).into_response())
}

async fn list_projects(State(engine): State<Engine>) -> ApiResult {
    Ok(Json(engine.store().projects().await?).into_response())
}

async fn remove_project(State(engine): State<Engine>, Path(project): Path<String>) -> ApiResult {
    let project = name("project", &project)?;
    if engine.store().remove_project(&project).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::from(engine::Error::UnknownProject(project)))
    }
}

#[derive(Deserialize)]
struct SubmitRun {
    /// The name of a project the server was given; never a path.
    project: String,
    #[serde(default)]
    parameters: Vec<(String, String)>,
}

async fn submit_run(State(engine): State<Engine>, body: Bytes) -> ApiResult {
    let request: SubmitRun = json_body(&body)?;
    let project = name("project", &request.project)?;
    let submitted = engine.submit_project(&project, &request.parameters, "manual").await?;
    Ok(submitted_response(submitted))
}

#[derive(Deserialize)]
struct RetryRun {
    from: Option<String>,
}

async fn retry_run(
    State(engine): State<Engine>,
    Path((project, number)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let run = find_run(&engine, &project, &number).await?;
    let project = name("project", &run.project)?;
    let request: RetryRun = json_body(&body)?;
    let from = request.from.as_deref().map(|f| name("from", f)).transpose()?;
    Ok(submitted_response(engine.retry(&project, run.number, from.as_ref()).await?))
}

/// 201 with the new run, or 200 with the run already queued for the same commit and parameters.
fn submitted_response(s: engine::Submitted) -> Response {
    let status = if s.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    (status, Json(serde_json::json!({ "run": s.run, "stages": s.stages, "duplicate": s.duplicate }))).into_response()
}

#[derive(Deserialize)]
struct RunsQuery {
    project: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(State(engine): State<Engine>, Query(query): Query<RunsQuery>) -> ApiResult {
    let project = query.project.as_deref().map(|p| name("project", p)).transpose()?;
    let runs = engine.store().runs(project.as_deref(), query.limit.unwrap_or(50)).await?;
    Ok(Json(runs).into_response())
}

/// A run named in the URL: `{project}/{number}`, or `{project}/latest`.
async fn find_run(engine: &Engine, project: &str, number: &str) -> Result<store::RunRecord, ApiError> {
    let project = name("project", project)?;
    let number = match number {
        "latest" => None,
        n => Some(n.parse::<i64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("run number {} is not a number", names::excerpt(n, 20)),
            )
            .hint("give the run's number, or `latest`")
        })?),
    };
    Ok(engine.store().run(&project, number).await?)
}

async fn show_run(State(engine): State<Engine>, Path((project, number)): Path<(String, String)>) -> ApiResult {
    let run = find_run(&engine, &project, &number).await?;
    let (run, stages) = engine.run_view(run.id).await?;
    Ok(Json(serde_json::json!({ "run": run, "stages": stages })).into_response())
}

async fn cancel_run(State(engine): State<Engine>, Path((project, number)): Path<(String, String)>) -> ApiResult {
    let run = find_run(&engine, &project, &number).await?;
    if !engine.cancel(run.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_ended",
            format!("run {} #{} already ended ({})", run.project, run.number, run.status),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "project": run.project, "number": run.number })))
        .into_response())
}

async fn list_endpoints(State(engine): State<Engine>) -> ApiResult {
    let endpoints = engine.store().endpoints().await?;
    let rows: Vec<serde_json::Value> = endpoints
        .into_iter()
        .map(|record| {
            let variants = engine.router().variants(&record.name);
            let mut row = serde_json::to_value(record).unwrap_or_default();
            row["variants"] = serde_json::to_value(variants).unwrap_or_default();
            row
        })
        .collect();
    Ok(Json(rows).into_response())
}

/// `POST /api/endpoints/{name}/deploy`: what `sagebrush deploy` sends.
#[derive(Deserialize)]
struct DeployRequest {
    model_group: String,
    model_version: Option<i64>,
    #[serde(default)]
    traffic: Option<String>,
    traffic_percent: Option<f64>,
    #[serde(default)]
    bake_seconds: f64,
    max_error_rate: Option<f64>,
    max_p99_ms: Option<f64>,
    variant: Option<String>,
    weight: Option<f64>,
    #[serde(default)]
    instances: Option<u32>,
    instance_type: Option<String>,
}

async fn deploy_endpoint(State(engine): State<Engine>, Path(endpoint): Path<String>, body: Bytes) -> ApiResult {
    let endpoint = name("endpoint", &endpoint)?;
    let request: DeployRequest = json_body(&body)?;
    let group = name("model_group", &request.model_group)?;
    let variant = request.variant.as_deref().map(|v| name("variant", v)).transpose()?;
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
    let percent = request.traffic_percent;
    let traffic = match (request.traffic.as_deref().unwrap_or("all-at-once"), percent) {
        ("all-at-once", _) => pipeline::Traffic::AllAtOnce,
        ("canary", p) => pipeline::Traffic::Canary { percent: p.unwrap_or(10.0) },
        ("linear", p) => pipeline::Traffic::Linear { percent: p.unwrap_or(20.0) },
        _ => return Err(bad("traffic is all-at-once, canary or linear")),
    };
    if percent.is_some_and(|p| !(p > 0.0 && p < 100.0))
        || !(request.bake_seconds >= 0.0 && request.bake_seconds.is_finite())
    {
        return Err(bad("traffic_percent must be between 0 and 100 and bake_seconds 0 or more"));
    }
    let version = match request.model_version {
        Some(version) => engine.store().model_version(&group, version).await?,
        None => engine
            .store()
            .model_versions(Some(&group))
            .await?
            .into_iter()
            .max_by_key(|v| v.version)
            .ok_or_else(|| store::Error::NotFound(format!("a registered version of {group}")))?,
    };
    let policy = pipeline::DeployPolicy {
        traffic,
        bake: Duration::from_secs_f64(request.bake_seconds),
        max_error_rate: request.max_error_rate,
        max_p99_ms: request.max_p99_ms,
    };
    let hosting = engine::Hosting {
        instances: request.instances.unwrap_or(1).clamp(1, 16),
        instance_type: request.instance_type,
        variant: variant.unwrap_or_else(Name::all_traffic),
        weight: request.weight,
        ..engine::Hosting::default()
    };
    let mut events = Vec::new();
    let model = format!("{} v{}", version.model_group, version.version);
    match engine.deploy(&endpoint, &version, version.run_id, &hosting, &policy, &mut events).await {
        Ok(()) => {
            Ok(Json(serde_json::json!({ "events": events, "model": model, "url": engine.invocation_url(&endpoint) }))
                .into_response())
        }
        Err(e) => Err(ApiError::from(e).with("events", events.into())),
    }
}

async fn delete_endpoint(State(engine): State<Engine>, Path(endpoint): Path<String>) -> ApiResult {
    let endpoint = name("endpoint", &endpoint)?;
    if engine.delete_endpoint(&endpoint).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no endpoint {endpoint}"))
            .hint("`sagebrush endpoints` lists them"))
    }
}

async fn list_models(State(engine): State<Engine>) -> ApiResult {
    Ok(Json(engine.store().model_versions(None).await?).into_response())
}
