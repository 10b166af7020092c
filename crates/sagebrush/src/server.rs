//! The server: one loopback listener for the invocation router and the HTTP API, found by the CLI through `<home>/server.json`.
//!
//! Invocations are served thread per core, as nginx and Envoy do: each thread runs its own
//! single-threaded runtime that accepts connections and answers them, and a connection to an
//! instance is driven by the thread that opened it, so at one request at a time nothing waits for
//! another thread to be woken (on a VM that costs more than the rest of the hop). API requests are
//! handed to the main runtime, where the engine runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use engine::{Engine, Home};
use router::Router;
use serde::Deserialize;
use tower_service::Service;

/// A started listener: the engine deploys to its router.
pub struct Server {
    pub engine: Engine,
    pub url: String,
    listener: std::net::TcpListener,
    router: Arc<Router>,
    /// Whether this server advertises itself in server.json (a `run`'s private listener does not).
    advertise: bool,
    /// How often instances are pinged and dead ones replaced; `None` for a `run`'s private listener.
    health_interval: Option<Duration>,
}

/// The content of `<home>/server.json`.
#[derive(serde::Serialize, Deserialize)]
struct ServerFile {
    url: String,
    pid: u32,
}

impl Server {
    /// Binds `listen` and opens the engine on it.
    pub async fn bind(home: &Home, listen: SocketAddr, advertise: bool) -> anyhow::Result<Server> {
        if advertise && let Some(url) = running(home).await {
            anyhow::bail!(crate::exit::Invalid(format!(
                "a sagebrush server is already running at {url} for {}; use `sagebrush run` to run pipelines through it, \
                 or pass --home to start a separate one",
                home.root().display()
            )));
        }
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen}; pass --listen 127.0.0.1:<another port> or stop what is using it")
        })?;
        let address = listener.local_addr()?;
        let listener = listener.into_std()?;
        let url = format!("http://{address}");
        let router = Router::new();
        let engine = Engine::open(home.clone(), router.clone(), url.clone()).await?;
        Ok(Server { engine, url, listener, router, advertise, health_interval: None })
    }

    /// Pings every endpoint instance each `seconds` while serving, and replaces dead ones.
    pub fn with_health_checks(mut self, seconds: f64) -> Server {
        self.health_interval = Some(Duration::from_secs_f64(seconds));
        self
    }

    /// Serves until the future `shutdown` completes.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let watcher = self.health_interval.map(|interval| tokio::spawn(self.engine.clone().watch_health(interval)));
        let server_file = self.engine.home().server_file();
        if self.advertise {
            let file = ServerFile { url: self.url.clone(), pid: std::process::id() };
            std::fs::write(&server_file, serde_json::to_string(&file)?)?;
        }
        let main = tokio::runtime::Handle::current();
        let api = api(self.engine.clone());
        let api_on_main = move |request: axum::extract::Request| {
            let (mut api, main) = (api.clone(), main.clone());
            async move {
                match main.spawn(async move { api.call(request).await }).await {
                    Ok(Ok(response)) => response,
                    _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        };
        let app = router::routes(self.router.clone()).fallback(api_on_main);
        // Dropped when serving ends or this future is dropped: either way, every thread stops.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut threads = Vec::new();
        for n in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
            let (listener, app, stopped) = (self.listener.try_clone()?, app.clone(), stopped.clone());
            let (finished, done) = tokio::sync::oneshot::channel();
            std::thread::Builder::new().name(format!("router-{n}")).spawn(move || {
                let _ = finished.send(serve_on_this_thread(listener, app, stopped));
            })?;
            threads.push(done);
        }
        shutdown.await;
        drop(stop);
        let mut result = Ok(());
        for done in threads {
            if let Ok(Err(e)) = done.await {
                result = Err(e);
            }
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if self.advertise {
            let _ = std::fs::remove_file(&server_file);
        }
        Ok(result?)
    }
}

/// Accepts and serves connections on a single-threaded runtime of this thread's own until `stopped` changes or its sender is dropped.
fn serve_on_this_thread(
    listener: std::net::TcpListener,
    app: axum::Router,
    mut stopped: tokio::sync::watch::Receiver<()>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .await
    })
}

/// The URL of the server running for this home, if one answers.
pub async fn running(home: &Home) -> Option<String> {
    let text = std::fs::read_to_string(home.server_file()).ok()?;
    let file: ServerFile = serde_json::from_str(&text).ok()?;
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().ok()?;
    let ok = client.get(format!("{}/health", file.url)).send().await.ok()?.status().is_success();
    ok.then_some(file.url)
}

fn api(engine: Engine) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/api/runs", post(submit_run).get(list_runs))
        .route("/api/runs/{project}/{number}", get(show_run))
        .route("/api/runs/{project}/{number}/retry", post(retry_run))
        .route("/api/endpoints", get(list_endpoints))
        .route("/api/endpoints/{name}", axum::routing::delete(delete_endpoint))
        .route("/api/endpoints/{name}/deploy", post(deploy_endpoint))
        .route("/api/models", get(list_models))
        .with_state(engine)
}

#[derive(Deserialize)]
struct SubmitRun {
    project: String,
    #[serde(default)]
    parameters: Vec<(String, String)>,
}

async fn submit_run(State(engine): State<Engine>, Json(request): Json<SubmitRun>) -> Response {
    let result = engine.submit(std::path::Path::new(&request.project), &request.parameters, "manual").await;
    submitted(result)
}

#[derive(Deserialize)]
struct RetryRun {
    from: Option<String>,
}

async fn retry_run(
    State(engine): State<Engine>,
    Path((project, number)): Path<(String, i64)>,
    Json(request): Json<RetryRun>,
) -> Response {
    submitted(engine.retry(&project, number, request.from.as_deref()).await)
}

fn submitted(result: Result<engine::Submitted, engine::Error>) -> Response {
    match result {
        Ok(s) => (StatusCode::CREATED, Json(serde_json::json!({ "run": s.run, "stages": s.stages }))).into_response(),
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &engine::Error) -> Response {
    let status = match e {
        engine::Error::Pipeline(_) | engine::Error::Invalid(_) => StatusCode::BAD_REQUEST,
        engine::Error::Store(store::Error::NotFound(_)) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(serde_json::json!({ "message": e.to_string() }))).into_response()
}

#[derive(Deserialize)]
struct RunsQuery {
    project: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(State(engine): State<Engine>, Query(query): Query<RunsQuery>) -> Response {
    match engine.store().runs(query.project.as_deref(), query.limit.unwrap_or(50)).await {
        Ok(runs) => Json(runs).into_response(),
        Err(e) => error_response(&e.into()),
    }
}

async fn show_run(State(engine): State<Engine>, Path((project, number)): Path<(String, i64)>) -> Response {
    let result = async {
        let run = engine.store().run(&project, Some(number)).await?;
        let stages = engine.store().stages(run.id).await?;
        Ok::<_, store::Error>(serde_json::json!({ "run": run, "stages": stages }))
    }
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => error_response(&e.into()),
    }
}

async fn list_endpoints(State(engine): State<Engine>) -> Response {
    match engine.store().endpoints().await {
        Ok(endpoints) => {
            let rows: Vec<serde_json::Value> = endpoints
                .into_iter()
                .map(|record| {
                    let variants = engine.router().variants(&record.name);
                    let mut row = serde_json::to_value(record).unwrap_or_default();
                    row["variants"] = serde_json::to_value(variants).unwrap_or_default();
                    row
                })
                .collect();
            Json(rows).into_response()
        }
        Err(e) => error_response(&e.into()),
    }
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

async fn deploy_endpoint(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    Json(request): Json<DeployRequest>,
) -> Response {
    let bad =
        |message: String| (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "message": message }))).into_response();
    let percent = request.traffic_percent;
    let traffic = match (request.traffic.as_deref().unwrap_or("all-at-once"), percent) {
        ("all-at-once", _) => pipeline::Traffic::AllAtOnce,
        ("canary", p) => pipeline::Traffic::Canary { percent: p.unwrap_or(10.0) },
        ("linear", p) => pipeline::Traffic::Linear { percent: p.unwrap_or(20.0) },
        (other, _) => return bad(format!("traffic is all-at-once, canary or linear, not {other}")),
    };
    if percent.is_some_and(|p| !(p > 0.0 && p < 100.0))
        || !(request.bake_seconds >= 0.0 && request.bake_seconds.is_finite())
    {
        return bad("traffic_percent must be between 0 and 100 and bake_seconds 0 or more".to_owned());
    }
    let version = match request.model_version {
        Some(version) => engine.store().model_version(&request.model_group, version).await,
        None => match engine.store().model_versions(Some(&request.model_group)).await {
            Ok(versions) => versions
                .into_iter()
                .max_by_key(|v| v.version)
                .ok_or_else(|| store::Error::NotFound(format!("a registered version of {}", request.model_group))),
            Err(e) => Err(e),
        },
    };
    let version = match version {
        Ok(version) => version,
        Err(e) => return error_response(&e.into()),
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
        variant: request.variant.unwrap_or_else(|| router::DEFAULT_VARIANT.to_owned()),
        weight: request.weight,
        ..engine::Hosting::default()
    };
    let mut events = Vec::new();
    let model = format!("{} v{}", version.model_group, version.version);
    match engine.deploy(&name, &version, version.run_id, &hosting, &policy, &mut events).await {
        Ok(()) => Json(serde_json::json!({ "events": events, "model": model, "url": engine.invocation_url(&name) }))
            .into_response(),
        Err(e @ engine::Error::RolledBack(_)) => {
            (StatusCode::CONFLICT, Json(serde_json::json!({ "message": e.to_string(), "events": events })))
                .into_response()
        }
        Err(e) => {
            let mut response = error_response(&e);
            *response.body_mut() =
                axum::body::Body::from(serde_json::json!({ "message": e.to_string(), "events": events }).to_string());
            response
        }
    }
}

async fn delete_endpoint(State(engine): State<Engine>, Path(name): Path<String>) -> Response {
    match engine.delete_endpoint(&name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, Json(serde_json::json!({ "message": format!("no endpoint {name}") })))
            .into_response(),
        Err(e) => error_response(&e),
    }
}

async fn list_models(State(engine): State<Engine>) -> Response {
    match engine.store().model_versions(None).await {
        Ok(models) => Json(models).into_response(),
        Err(e) => error_response(&e.into()),
    }
}
