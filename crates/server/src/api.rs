//! The HTTP API under `/api/v1`, a thin layer over [`Service`]: it parses, calls, answers.
//!
//! Every error is `{"error": {"code", "message", "hint"}}` with a 4xx for the caller's mistakes,
//! including a malformed path, query or body. `GET /api/v1/openapi.json` is the OpenAPI 3.1
//! document generated from these handlers.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::service::{
    self, AddProject, AuditPage, AuditQuery, CreatedToken, Decision, DeployRequest, Deployed, EndpointView, EventsPage,
    HookAnswer, RunDetail, RunFilter, RunsPage, Service, Submitted, WeightsRequest,
};
use crate::{ServiceError, auth};

/// The largest request body the API takes.
const BODY_LIMIT: usize = 1024 * 1024;

type ApiResult = Result<Response, ServiceError>;

pub fn routes(service: Service, body_timeout: Duration) -> axum::Router {
    axum::Router::new()
        .route("/health", get(health))
        .route("/api/v1/health", get(health))
        .route("/api/v1/version", get(version))
        .route("/api/v1/openapi.json", get(|| async { Json(openapi()) }))
        .route("/api/v1/projects", post(add_project).get(list_projects))
        .route("/api/v1/projects/{project}", axum::routing::delete(remove_project))
        .route("/api/v1/runs", post(submit_run).get(list_runs))
        .route("/api/v1/runs/{project}/{number}", get(show_run))
        .route("/api/v1/runs/{project}/{number}/cancel", post(cancel_run))
        .route("/api/v1/runs/{project}/{number}/retry", post(retry_run))
        .route("/api/v1/runs/{project}/{number}/logs", get(run_logs))
        .route("/api/v1/runs/{project}/{number}/approve", post(approve_run))
        .route("/api/v1/runs/{project}/{number}/reject", post(reject_run))
        .route("/api/v1/models", get(list_models))
        .route("/api/v1/endpoints", get(list_endpoints))
        .route("/api/v1/endpoints/{endpoint}", get(show_endpoint).delete(delete_endpoint))
        .route("/api/v1/endpoints/{endpoint}/deploy", post(deploy_endpoint))
        .route("/api/v1/endpoints/{endpoint}/weights", axum::routing::put(set_weights))
        .route("/api/v1/endpoints/{endpoint}/rollback", post(rollback_endpoint))
        .route("/api/v1/endpoints/{endpoint}/history", get(endpoint_history))
        .route("/api/v1/endpoints/{endpoint}/drift", get(endpoint_drift))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{token}", axum::routing::delete(revoke_token))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/events", get(list_events))
        .route("/hooks/{provider}/{project}", post(push_hook))
        .route("/api/v1/notifications/failures", get(notify_failures))
        .route("/api/v1/registry", get(registry))
        .route("/api/v1/gc", post(collect_garbage))
        .merge(crate::control_plane::routes())
        .fallback(|| async {
            ServiceError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
                .hint("the API is under /api/v1; its document is /api/v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ServiceError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(service.clone())
        .layer(axum::middleware::from_fn_with_state(body_timeout, whole_body))
        // Outermost: a caller who may not call a route is refused before its body is read.
        .layer(axum::middleware::from_fn_with_state(service, authorize))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sagebrush", description = "Runs, projects, model versions and endpoints of a sagebrush server."),
    paths(
        health,
        version,
        add_project,
        list_projects,
        remove_project,
        submit_run,
        list_runs,
        show_run,
        cancel_run,
        retry_run,
        approve_run,
        reject_run,
        run_logs,
        list_models,
        list_endpoints,
        show_endpoint,
        delete_endpoint,
        deploy_endpoint,
        set_weights,
        rollback_endpoint,
        endpoint_history,
        endpoint_drift,
        create_token,
        list_tokens,
        revoke_token,
        list_audit,
        list_events,
        notify_failures,
        registry,
        collect_garbage,
        push_hook
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Tokens)
)]
struct ApiDoc;

/// The bearer token every route but health, version and this document takes, and the 401 and
/// 403 any of them answers off loopback.
struct Tokens;

impl utoipa::Modify for Tokens {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`sagebrush token create`; needed only when the server listens off loopback"))
                    .build(),
            ),
        );
        let error = |description: &str| {
            let content =
                ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))).build();
            RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
        };
        let open = ["/health", "/api/v1/health", "/api/v1/version", "/api/v1/openapi.json"];
        for (path, item) in document.paths.paths.iter_mut() {
            // Webhooks are signed with the project's secret instead (and say so themselves).
            if open.contains(&path.as_str()) || path.starts_with("/hooks/") {
                continue;
            }
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                // Either a token, or none on loopback.
                operation.security =
                    Some(vec![SecurityRequirement::new("token", Vec::<String>::new()), SecurityRequirement::default()]);
                let responses = &mut operation.responses.responses;
                responses.insert("401".to_owned(), error("no token, or one the server does not know (off loopback)"));
                responses.insert("403".to_owned(), error("the token's role may not do this"));
            }
        }
    }
}

/// The body of every error answer.
#[derive(Serialize, Deserialize, ToSchema)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct ErrorDetail {
    /// Stable: `invalid_name`, `invalid_request`, `invalid_pipeline`, `not_found`, `unknown_project`,
    /// `unknown_stage`, `conflict`, `run_ended`, `rolled_back`, `body_too_large`, `body_timeout`, ...
    code: String,
    message: String,
    hint: Option<String>,
}

/// Tells who calls, refuses a caller whose role is short of the route's, and records every change
/// in the audit with the caller and the answer's status.
async fn authorize(State(service): State<Service>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // SageMaker's operations all POST to `/`: what one needs is in its X-Amz-Target.
    let sagemaker = (request.uri().path() == "/")
        .then(|| crate::control_plane::operation(request.headers()).map(str::to_owned))
        .flatten();
    let sagemaker_read = sagemaker.as_deref().is_some_and(crate::control_plane::reads);
    let needed =
        if sagemaker_read { Some(store::Role::Viewer) } else { auth::required_role(&method, request.uri().path()) };
    let Some(needed) = needed else {
        return next.run(request).await;
    };
    // SageMaker's callers are told no in SageMaker's shape, which boto3 raises as its classes.
    let refuse = |refusal: ServiceError| match &sagemaker {
        Some(_) => crate::control_plane::refused(refusal),
        None => refusal.into_response(),
    };
    let caller = match service.access().caller(request.headers()) {
        Ok(caller) => caller,
        Err(refusal) => return refuse(refusal),
    };
    let allowed = caller.role >= needed;
    request.extensions_mut().insert(caller.clone());
    if !auth::is_change(&method) || sagemaker_read {
        return if allowed { next.run(request).await } else { refuse(forbidden(&caller, needed)) };
    }
    // A known caller's change is audited, refused or not. (One with no known token is not:
    // that would let anyone write to the server's disk.)
    let action = match &sagemaker {
        Some(operation) => format!("{method} / SageMaker.{operation}"),
        None => format!("{method} {}", request.uri().path()),
    };
    let response = if allowed { next.run(request).await } else { refuse(forbidden(&caller, needed)) };
    service.record(&caller, &action, response.status()).await;
    response
}

fn forbidden(caller: &auth::Caller, needed: store::Role) -> ServiceError {
    let (name, role, needed) = (&caller.name, caller.role.as_str(), needed.as_str());
    ServiceError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("token {name} is a {role}; this needs the {needed} role"),
    )
    .hint(format!("ask an admin for a token made with `--role {needed}`"))
}

/// Reads a request's whole body before its route runs: at most [`BODY_LIMIT`], within `timeout`.
async fn whole_body(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(_)) => ServiceError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {BODY_LIMIT} bytes"),
        )
        .into_response(),
        Err(_) => ServiceError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {} s", timeout.as_secs_f64()),
        )
        .into_response(),
    }
}

/// axum's `Path`, with its rejections in the API's error shape.
struct ApiPath<T>(T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())),
        }
    }
}

/// axum's `Query`, with its rejections in the API's error shape.
struct ApiQuery<T>(T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())),
        }
    }
}

/// A run in a URL (for the document; the handlers read the tuple).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct RunPath {
    /// The project (pipeline name).
    #[param(pattern = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", max_length = 63)]
    project: String,
    /// The run number, or `latest`.
    #[param(pattern = "^(latest|[1-9][0-9]{0,17})$")]
    number: String,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ProjectPath {
    #[param(pattern = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", max_length = 63)]
    project: String,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct EndpointPath {
    #[param(pattern = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", max_length = 63)]
    endpoint: String,
}

/// A JSON body, with the API's error shape when it does not parse.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ServiceError> {
    serde_json::from_slice(body).map_err(|e| {
        ServiceError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the request body is not what this route takes: {e}"),
        )
    })
}

/// `{number}` in a URL: a run number, or `latest`.
fn run_number(text: &str) -> Result<Option<i64>, ServiceError> {
    match text {
        "latest" => Ok(None),
        n => n.parse::<i64>().map(Some).map_err(|_| {
            ServiceError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("run number {} is not a number", names::excerpt(n, 20)),
            )
            .hint("give the run's number, or `latest`")
        }),
    }
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: String,
}

/// Whether the server answers.
#[utoipa::path(get, path = "/api/v1/health", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

#[derive(Serialize, ToSchema)]
struct Version {
    version: String,
}

/// The server's version.
#[utoipa::path(get, path = "/api/v1/version", responses((status = 200, body = Version)))]
async fn version() -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION").to_owned() })
}

/// Lets the server run a project from now on: a folder, or a git repository's branch.
#[utoipa::path(post, path = "/api/v1/projects", request_body = AddProject, responses(
    (status = 201, body = store::ProjectRecord),
    (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
))]
async fn add_project(State(service): State<Service>, body: Bytes) -> ApiResult {
    let request: AddProject = json_body(&body)?;
    let project = service.add_project(&request).await?;
    Ok((StatusCode::CREATED, Json(project)).into_response())
}

/// The projects the server may run.
#[utoipa::path(get, path = "/api/v1/projects", responses((status = 200, body = Vec<store::ProjectRecord>)))]
async fn list_projects(State(service): State<Service>) -> ApiResult {
    Ok(Json(service.projects().await?).into_response())
}

/// Stops letting the server run a project (its runs, models and endpoints stay).
#[utoipa::path(delete, path = "/api/v1/projects/{project}", params(ProjectPath), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn remove_project(State(service): State<Service>, ApiPath(project): ApiPath<String>) -> ApiResult {
    service.remove_project(&service::name("project", &project)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
struct SubmitRun {
    /// The name of a project the server was given; never a path.
    project: String,
    /// `[name, value]` pairs, as `-p name=value` gives them.
    #[serde(default)]
    parameters: Vec<(String, String)>,
}

/// Queues a run of a project.
#[utoipa::path(post, path = "/api/v1/runs", request_body = SubmitRun, responses(
    (status = 201, description = "queued", body = Submitted),
    (status = 200, description = "the same commit with the same parameters is queued already", body = Submitted),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
))]
async fn submit_run(State(service): State<Service>, caller: Option<Extension<auth::Caller>>, body: Bytes) -> ApiResult {
    let request: SubmitRun = json_body(&body)?;
    let project = service::name("project", &request.project)?;
    submitted(service.submit(&project, &request.parameters, &caller_of(caller)).await?)
}

/// Who calls, as `authorize` found; `local` where no token is asked for.
pub(crate) fn caller_of(caller: Option<Extension<auth::Caller>>) -> auth::Caller {
    caller.map_or_else(auth::Caller::local, |Extension(caller)| caller)
}

/// 201 with the new run, or 200 with the run already queued for the same commit and parameters.
fn submitted(s: Submitted) -> ApiResult {
    Ok((if s.duplicate { StatusCode::OK } else { StatusCode::CREATED }, Json(s)).into_response())
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs", params(RunFilter), responses(
    (status = 200, body = RunsPage), (status = 400, body = ErrorBody),
))]
async fn list_runs(State(service): State<Service>, ApiQuery(filter): ApiQuery<RunFilter>) -> ApiResult {
    Ok(Json(service.runs(&filter).await?).into_response())
}

/// A run with its stages; `latest` as the number for the newest.
#[utoipa::path(get, path = "/api/v1/runs/{project}/{number}", params(RunPath),
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_run(State(service): State<Service>, ApiPath((project, number)): ApiPath<(String, String)>) -> ApiResult {
    let project = service::name("project", &project)?;
    Ok(Json(service.run(&project, run_number(&number)?).await?).into_response())
}

/// Stops a running run, or takes a queued one out of the queue.
#[utoipa::path(post, path = "/api/v1/runs/{project}/{number}/cancel", params(RunPath),
    responses((status = 202, body = RunDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn cancel_run(
    State(service): State<Service>,
    ApiPath((project, number)): ApiPath<(String, String)>,
) -> ApiResult {
    let project = service::name("project", &project)?;
    Ok((StatusCode::ACCEPTED, Json(service.cancel(&project, run_number(&number)?).await?)).into_response())
}

#[derive(Deserialize, ToSchema)]
struct RetryRun {
    /// Rerun from this stage, reusing the outputs of the stages before it.
    from: Option<String>,
}

/// Approves a run waiting at its approval stage: its model version becomes `Approved` and the run
/// goes on. Who, when and why are recorded.
#[utoipa::path(post, path = "/api/v1/runs/{project}/{number}/approve", params(RunPath), request_body = Decision,
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the run is not waiting for an approval", body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn approve_run(
    State(service): State<Service>,
    ApiPath((project, number)): ApiPath<(String, String)>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> ApiResult {
    decide(service, &project, &number, true, caller, &body).await
}

/// Rejects a run waiting at its approval stage: its model version becomes `Rejected` and the run
/// fails before the stages after it (prod keeps serving what it serves).
#[utoipa::path(post, path = "/api/v1/runs/{project}/{number}/reject", params(RunPath), request_body = Decision,
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the run is not waiting for an approval", body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn reject_run(
    State(service): State<Service>,
    ApiPath((project, number)): ApiPath<(String, String)>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> ApiResult {
    decide(service, &project, &number, false, caller, &body).await
}

async fn decide(
    service: Service,
    project: &str,
    number: &str,
    approve: bool,
    caller: Option<Extension<auth::Caller>>,
    body: &Bytes,
) -> ApiResult {
    let project = service::name("project", project)?;
    let decision: Decision = json_body(body)?;
    let detail = service.decide(&project, run_number(number)?, approve, &decision, &caller_of(caller)).await?;
    Ok(Json(detail).into_response())
}

/// Queues a new run with the parameters of an earlier one.
#[utoipa::path(post, path = "/api/v1/runs/{project}/{number}/retry", params(RunPath),
    request_body = RetryRun,
    responses((status = 201, body = Submitted), (status = 200, body = Submitted), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn retry_run(
    State(service): State<Service>,
    ApiPath((project, number)): ApiPath<(String, String)>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> ApiResult {
    let project = service::name("project", &project)?;
    let request: RetryRun = json_body(&body)?;
    let from = request.from.as_deref().map(|f| service::name("from", f)).transpose()?;
    submitted(service.retry(&project, run_number(&number)?, from.as_ref(), &caller_of(caller)).await?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// Only this stage's log.
    stage: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Logs {
    /// Each stage's log, in stage order.
    pub stages: Vec<StageLog>,
    /// Whether the run has ended (nothing more will be written).
    pub finished: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct StageLog {
    pub stage: String,
    pub log: String,
}

/// A run's stage logs as they are now; asked with `Accept: text/event-stream`, followed until the
/// run ends: a `log` event (`{"stage", "text"}`) for what each stage's log gains, then an `end`
/// event (`{"status"}`).
#[utoipa::path(get, path = "/api/v1/runs/{project}/{number}/logs",
    params(RunPath, LogsQuery),
    responses((status = 200, body = Logs), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn run_logs(
    State(service): State<Service>,
    ApiPath((project, number)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<LogsQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult {
    let project = service::name("project", &project)?;
    let stage = query.stage.as_deref().map(|s| service::name("stage", s)).transpose()?;
    let number = run_number(&number)?;
    if wants_event_stream(&headers) {
        let detail = service.run(&project, number).await?;
        // Checked now, so a bad stage is a 400 rather than a stream that ends at once.
        service.log_stages(&detail, stage.as_ref())?;
        return Ok(follow_logs(service, project, detail.run.number, stage).into_response());
    }
    // Read the status first: a run that ended has written all of its logs.
    let finished = service.run(&project, number).await?.run.status.is_finished();
    let stages = service.logs(&project, number, stage.as_ref()).await?;
    let stages = stages.into_iter().map(|(stage, log)| StageLog { stage: stage.to_string(), log }).collect();
    Ok(Json(Logs { stages, finished }).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ModelsQuery {
    /// Only this model group.
    group: Option<String>,
}

/// Registered model versions with their lineage.
#[utoipa::path(get, path = "/api/v1/models", params(ModelsQuery), responses(
    (status = 200, body = Vec<store::ModelVersionRecord>), (status = 400, body = ErrorBody),
))]
async fn list_models(State(service): State<Service>, ApiQuery(query): ApiQuery<ModelsQuery>) -> ApiResult {
    let group = query.group.as_deref().map(|g| service::name("group", g)).transpose()?;
    Ok(Json(service.models(group.as_ref()).await?).into_response())
}

/// Every endpoint, with its variants and counters when served.
#[utoipa::path(get, path = "/api/v1/endpoints", responses((status = 200, body = Vec<EndpointView>)))]
async fn list_endpoints(State(service): State<Service>) -> ApiResult {
    Ok(Json(service.endpoints().await?).into_response())
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint}", params(EndpointPath), responses(
    (status = 200, body = EndpointView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn show_endpoint(State(service): State<Service>, ApiPath(endpoint): ApiPath<String>) -> ApiResult {
    Ok(Json(service.endpoint(&service::name("endpoint", &endpoint)?).await?).into_response())
}

/// Stops serving an endpoint (its in-flight requests finish) and forgets it.
#[utoipa::path(delete, path = "/api/v1/endpoints/{endpoint}", params(EndpointPath), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn delete_endpoint(State(service): State<Service>, ApiPath(endpoint): ApiPath<String>) -> ApiResult {
    service.delete_endpoint(&service::name("endpoint", &endpoint)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deploys a registered model version to an endpoint, shifting traffic as asked.
#[utoipa::path(post, path = "/api/v1/endpoints/{endpoint}/deploy", params(EndpointPath),
    request_body = DeployRequest,
    responses((status = 200, body = Deployed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "an alarm rolled the deploy back", body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn deploy_endpoint(State(service): State<Service>, ApiPath(endpoint): ApiPath<String>, body: Bytes) -> ApiResult {
    let endpoint = service::name("endpoint", &endpoint)?;
    let request: DeployRequest = json_body(&body)?;
    Ok(Json(service.deploy(&endpoint, &request).await?).into_response())
}

/// Deploys, all at once, the model version the endpoint served before its current one (from its history).
#[utoipa::path(post, path = "/api/v1/endpoints/{endpoint}/rollback", params(EndpointPath),
    responses((status = 200, body = Deployed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "it served no other version", body = ErrorBody)))]
async fn rollback_endpoint(State(service): State<Service>, ApiPath(endpoint): ApiPath<String>) -> ApiResult {
    let endpoint = service::name("endpoint", &endpoint)?;
    Ok(Json(service.rollback(&endpoint).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only what it served at this time (ms since the epoch).
    at: Option<i64>,
}

/// What an endpoint served, and when: model versions with the run, commit and approval of each.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint}/history", params(EndpointPath, HistoryQuery),
    responses((status = 200, body = Vec<service::Served>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn endpoint_history(
    State(service): State<Service>,
    ApiPath(endpoint): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult {
    let endpoint = service::name("endpoint", &endpoint)?;
    Ok(Json(service.history(&endpoint, query.at).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DriftQuery {
    /// How many of the newest captured rows are compared (default 1000).
    window: Option<usize>,
    /// A feature whose PSI is above this has drifted (default 0.2).
    threshold: Option<f64>,
}

/// How far an endpoint's newest captured requests have drifted from its model's training data:
/// each feature's population stability index, with both distributions' bins.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint}/drift", params(EndpointPath, DriftQuery),
    responses((status = 200, body = engine::DriftReport), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn endpoint_drift(
    State(service): State<Service>,
    ApiPath(endpoint): ApiPath<String>,
    ApiQuery(query): ApiQuery<DriftQuery>,
) -> ApiResult {
    let endpoint = service::name("endpoint", &endpoint)?;
    Ok(Json(service.drift(&endpoint, query.window, query.threshold).await?).into_response())
}

/// The newest `[[notify]]` deliveries given up on after their retries (at most 100), newest first.
#[utoipa::path(get, path = "/api/v1/notifications/failures", responses((status = 200, body = Vec<store::NotifyFailure>)))]
async fn notify_failures(State(service): State<Service>) -> ApiResult {
    Ok(Json(service.notify_failures().await?).into_response())
}

/// Where the local image registry listens (it stands in for ECR), started on first ask; it runs
/// as long as the server.
#[utoipa::path(get, path = "/api/v1/registry", responses((status = 200, body = service::Registry),
    (status = 400, body = ErrorBody)))]
async fn registry(State(service): State<Service>) -> ApiResult {
    Ok(Json(service.registry().await?).into_response())
}

/// Retention: removes each project's runs past its `[pipeline] keep_runs` that nothing uses
/// (no endpoint serves them, no approved model version is theirs), with their files and images;
/// `dry_run` only lists them.
#[utoipa::path(post, path = "/api/v1/gc", request_body = service::GcRequest,
    responses((status = 200, body = engine::GcReport), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn collect_garbage(State(service): State<Service>, body: Bytes) -> ApiResult {
    let request: service::GcRequest = if body.is_empty() { service::GcRequest::default() } else { json_body(&body)? };
    Ok(Json(service.gc(&request).await?).into_response())
}

/// A push webhook from GitHub, GitLab or Gitea, in the provider's own format and signature:
/// it queues a run of the pushed commit when the project's `[triggers.push]` takes it. Signed, so
/// it takes no token.
#[utoipa::path(post, path = "/hooks/{provider}/{project}",
    params(("provider" = String, Path, description = "github, gitlab or gitea"), ("project" = String, Path)),
    request_body(content = Object, description = "the provider's push (or ping) payload"),
    security(()),
    responses((status = 201, body = HookAnswer), (status = 200, body = HookAnswer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn push_hook(
    State(service): State<Service>,
    ApiPath((provider, project)): ApiPath<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    let project = service::name("project", &project)?;
    let answer = service.hook(&provider, &project, &headers, &body).await?;
    let status = if answer.outcome == service::HookOutcome::Started { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(answer)).into_response())
}

/// Sets the traffic weights of some of an endpoint's variants (SageMaker's
/// UpdateEndpointWeightsAndCapacities); the rest keep theirs, and no instance restarts.
#[utoipa::path(put, path = "/api/v1/endpoints/{endpoint}/weights", params(EndpointPath),
    request_body = WeightsRequest,
    responses((status = 200, body = EndpointView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn set_weights(State(service): State<Service>, ApiPath(endpoint): ApiPath<String>, body: Bytes) -> ApiResult {
    let endpoint = service::name("endpoint", &endpoint)?;
    let request: WeightsRequest = json_body(&body)?;
    Ok(Json(service.set_weights(&endpoint, &request).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
struct CreateToken {
    /// 1 to 63 letters, digits and `-`.
    name: String,
    role: store::Role,
}

/// Makes a token. Its value is in this answer only; the server keeps its hash.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateToken, responses(
    (status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 413, body = ErrorBody),
))]
async fn create_token(State(service): State<Service>, body: Bytes) -> ApiResult {
    let request: CreateToken = json_body(&body)?;
    let created = service.create_token(&service::name("token", &request.name)?, request.role).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// The tokens, by name and role (never their values).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<store::TokenRecord>)))]
async fn list_tokens(State(service): State<Service>) -> ApiResult {
    Ok(Json(service.tokens().await?).into_response())
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct TokenPath {
    #[param(pattern = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", max_length = 63)]
    token: String,
}

/// Revokes a token: it is refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/tokens/{token}", params(TokenPath), responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn revoke_token(State(service): State<Service>, ApiPath(token): ApiPath<String>) -> ApiResult {
    service.revoke_token(&service::name("token", &token)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every call that changed something, newest first: who, what, and the answer's status.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses(
    (status = 200, body = AuditPage), (status = 400, body = ErrorBody),
))]
async fn list_audit(State(service): State<Service>, ApiQuery(query): ApiQuery<AuditQuery>) -> ApiResult {
    Ok(Json(service.audit(&query).await?).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events after this one (0, the default: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Only this project's events.
    project: Option<String>,
    /// At most this many in a page (1 to 1000, default 1000).
    limit: Option<i64>,
}

/// Every change of runs, stages, model versions and endpoints, oldest first: a page of JSON, or,
/// asked with `Accept: text/event-stream`, server-sent events that go on with each new change
/// (each with the event's `id`, so a client resumes with `Last-Event-ID`; with neither that nor
/// `after`, the stream starts with the next change).
#[utoipa::path(get, path = "/api/v1/events", params(EventsQuery), responses(
    (status = 200, body = EventsPage), (status = 400, body = ErrorBody),
))]
async fn list_events(
    State(service): State<Service>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult {
    let project = query.project.as_deref().map(|p| service::name("project", p)).transpose()?;
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
    if !wants_event_stream(&headers) {
        let after = query.after.unwrap_or(0).max(0);
        return Ok(Json(service.events(after, project.as_ref(), query.limit).await?).into_response());
    }
    // A stream with no place to resume from starts with what happens next.
    let after = match resumed.or(query.after) {
        Some(after) => after.max(0),
        None => service.last_event().await?,
    };
    Ok(event_stream(service, after, project).into_response())
}

/// Events after `after` as server-sent events, going on with each new change.
pub(crate) fn event_stream(
    service: Service,
    after: i64,
    project: Option<names::Name>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    let pending = std::collections::VecDeque::new();
    let events = futures_util::stream::unfold(
        (service, after, project, pending),
        |(service, mut after, project, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    let sent = sse_event(&event);
                    return Some((sent, (service, after, project, pending)));
                }
                // Ends the stream when the store fails: the client reconnects with Last-Event-ID.
                let page = service.wait_for_events(after, project.as_ref(), Duration::from_secs(60)).await.ok()?;
                after = page.last;
                pending.extend(page.events);
            }
        },
    );
    sse(events)
}

/// A stream of server-sent events that starts with a comment, so the answer's head goes out at
/// once: a browser whose stream has no head yet holds up leaving the page.
fn sse<S>(
    events: S,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
>
where
    S: futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>> + Send + 'static,
{
    use futures_util::StreamExt;
    let opened = futures_util::stream::once(async { Ok(axum::response::sse::Event::default().comment("following")) });
    axum::response::sse::Sse::new(opened.chain(events)).keep_alive(axum::response::sse::KeepAlive::default())
}

fn sse_event(event: &store::EventRecord) -> Result<axum::response::sse::Event, std::convert::Infallible> {
    let kind = serde_json::to_value(event.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let data = serde_json::to_string(event).unwrap_or_default();
    Ok(axum::response::sse::Event::default().id(event.id.to_string()).event(kind).data(data))
}

/// Whether a client asked for server-sent events.
fn wants_event_stream(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// How often a followed log is read again while its run goes on (a log's growth is no event).
const LOG_FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// A run's logs as server-sent events until it ends.
pub(crate) fn follow_logs(
    service: Service,
    project: names::Name,
    number: i64,
    stage: Option<names::Name>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::Event;
    struct Follow {
        service: Service,
        project: names::Name,
        number: i64,
        stage: Option<names::Name>,
        offsets: Vec<u64>,
        pending: std::collections::VecDeque<Event>,
        ended: bool,
    }
    let start =
        Follow { service, project, number, stage, offsets: Vec::new(), pending: Default::default(), ended: false };
    let events = futures_util::stream::unfold(start, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                return Some((Ok(event), f));
            }
            if f.ended {
                return None;
            }
            let (chunks, status) =
                f.service.log_since(&f.project, f.number, f.stage.as_ref(), &mut f.offsets).await.ok()?;
            for (stage, text) in chunks {
                let data = serde_json::json!({ "stage": stage, "text": text }).to_string();
                f.pending.push_back(Event::default().event("log").data(data));
            }
            if status.is_finished() {
                f.pending
                    .push_back(Event::default().event("end").data(serde_json::json!({ "status": status }).to_string()));
                f.ended = true;
            } else if f.pending.is_empty() {
                tokio::time::sleep(LOG_FOLLOW_INTERVAL).await;
            }
        }
    });
    sse(events)
}
