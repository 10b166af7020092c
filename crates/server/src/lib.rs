//! The team server: the HTTP API (`/api/v1`, with its OpenAPI document) over one service layer, the
//! invocation router, and the listener both are served on; found by the CLI through `<home>/server.json`.
//!
//! Invocations are served thread per core, as nginx and Envoy do: each thread runs its own
//! single-threaded runtime that accepts connections and answers them, and a connection to an
//! instance is driven by the thread that opened it, so at one request at a time nothing waits for
//! another thread to be woken (on a VM that costs more than the rest of the hop). API requests are
//! handed to the main runtime, where the engine runs.

mod api;
pub mod auth;
pub mod charts;
pub mod control_plane;
mod dashboard;
mod error;
mod guard;
mod hooks;
mod listener;
mod s3;
pub mod service;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use engine::{Engine, Home};
use router::Router;
use serde::Deserialize;
use tower_service::Service as _;

pub use api::{Logs, StageLog, openapi, routes as api_routes};
pub use error::{Error, ServiceError};
pub use service::Service;

/// What runs a server's work: this machine, and SageMaker for `backend = "sagemaker"` stages (training
/// and endpoints) and ECR for `registry = "ecr"` in a build with `aws` (otherwise such a stage is
/// refused with the flag to build with).
pub fn backends() -> engine::Backends {
    #[allow(unused_mut)]
    let mut backends = engine::Backends::local();
    #[cfg(feature = "aws")]
    {
        let sagemaker = Arc::new(sagemaker::SageMaker::new());
        backends.sagemaker_training = Some(sagemaker.clone());
        backends.sagemaker_hosting = Some(sagemaker.clone());
        backends.ecr = Some(sagemaker);
    }
    backends
}

/// How a server listens and what it is given.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Listen off loopback with no authentication.
    pub insecure_no_auth: bool,
    /// Endpoints anyone may invoke with no token, even off loopback.
    pub public_endpoints: Vec<String>,
    /// Host names besides loopback names and IP addresses that requests may name.
    pub public_names: Vec<String>,
    /// Project folders the API may run, besides those added already.
    pub projects: Vec<PathBuf>,
    /// How long a connection may go without a request in flight.
    pub header_timeout: Duration,
    /// How long a request may take to send its body.
    pub body_timeout: Duration,
    /// Open connections at most; `None`: what the open-files limit leaves room for.
    pub max_connections: Option<usize>,
}

impl Config {
    /// A private loopback listener on a free port, for a `run` with no server.
    pub fn private() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            insecure_no_auth: false,
            public_endpoints: Vec::new(),
            public_names: Vec::new(),
            projects: Vec::new(),
            header_timeout: Duration::from_secs(30),
            body_timeout: router::DEFAULT_BODY_TIMEOUT,
            max_connections: None,
        }
    }
}

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
    limits: listener::Limits,
    body_timeout: Duration,
    service: Service,
}

/// The content of `<home>/server.json`.
#[derive(serde::Serialize, Deserialize)]
struct ServerFile {
    url: String,
    pid: u32,
}

impl Server {
    /// Binds the listener `args` name and opens the engine on it, with the projects `args` gives.
    ///
    /// A listener off loopback needs tokens (callers must then present one), unless
    /// `--insecure-no-auth` says to take the risk.
    pub async fn bind(home: &Home, args: &Config, advertise: bool) -> Result<Server, Error> {
        let listen = args.listen;
        let tokens_required = !listen.ip().is_loopback() && !args.insecure_no_auth;
        if !listen.ip().is_loopback() && args.insecure_no_auth {
            eprintln!(
                "WARNING: listening on {listen} with no authentication (--insecure-no-auth): anyone who can reach \
                 this port can run commands as this user"
            );
        }
        if advertise && let Some(url) = running(home).await {
            return Err(Error::Refused(format!(
                "a sagebrush server is already running at {url} for {}; use `sagebrush run` to run pipelines through it, \
                 or pass --home to start a separate one",
                home.root().display()
            )));
        }
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|source| Error::Listen { listen, source })?;
        let address = listener.local_addr().map_err(|source| Error::Listen { listen, source })?;
        let listener = listener.into_std().map_err(|source| Error::Listen { listen, source })?;
        let url = format!("http://{address}");
        let body_timeout = args.body_timeout;
        let router = Router::with_body_timeout(body_timeout);
        let engine = Engine::open_with(home.clone(), router.clone(), url.clone(), backends()).await?;
        let service = Service::for_server(engine.clone(), tokens_required, args.public_endpoints.clone()).await?;
        if tokens_required && service.access().tokens.is_empty() {
            return Err(Error::Refused(format!(
                "refusing to listen on {listen}: off loopback every caller needs a token, and there are none yet; \
                 make one with `sagebrush token create NAME --role admin` (it is printed once), or listen on \
                 127.0.0.1 (the default)"
            )));
        }
        for project in &args.projects {
            engine.add_project(project).await?;
        }
        let open_files = listener::raise_open_files_limit();
        let limits = listener::Limits {
            guard: guard::Guard::new(&args.public_names),
            access: service.access().clone(),
            header_timeout: args.header_timeout,
            max_connections: args.max_connections.unwrap_or_else(|| listener::default_max_connections(open_files)),
        };
        Ok(Server { engine, url, listener, router, advertise, health_interval: None, limits, body_timeout, service })
    }

    /// Queues the runs this server is given and executes them, `limit` at once (default: half the cores).
    pub fn with_queue(self, limit: Option<usize>) -> Server {
        self.engine.run_queue(limit.unwrap_or_else(engine::default_queue_limit));
        self
    }

    /// Fires the projects' poll, cron and data triggers and delivers their notifications while serving.
    pub fn with_triggers(self) -> Server {
        self.engine.run_triggers();
        self.engine.run_notifications();
        self
    }

    /// Pings every endpoint instance each `seconds` while serving, and replaces dead ones.
    pub fn with_health_checks(mut self, seconds: f64) -> Server {
        self.health_interval = Some(Duration::from_secs_f64(seconds));
        self
    }

    /// Serves until the future `shutdown` completes.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let watcher = self.health_interval.map(|interval| tokio::spawn(self.engine.clone().watch_health(interval)));
        let server_file = self.engine.home().server_file();
        if self.advertise {
            let file = ServerFile { url: self.url.clone(), pid: std::process::id() };
            let text = serde_json::to_string(&file).unwrap_or_default();
            write_private(&server_file, text.as_bytes())
                .map_err(|source| Error::Io { path: server_file.clone(), source })?;
        }
        let main = tokio::runtime::Handle::current();
        let traffic = Arc::new(dashboard::traffic::History::default());
        let sampler = tokio::spawn(traffic.clone().sample(self.router.clone()));
        // S3's requests, whatever their path (a bucket may be called `endpoints`), are S3's:
        // authorized there, their bodies streamed to disk rather than read whole.
        let s3 = axum::middleware::from_fn_with_state((self.service.clone(), self.body_timeout), s3::divert);
        let api = api::routes(self.service.clone(), self.body_timeout)
            .merge(dashboard::routes(self.service.clone(), traffic))
            .layer(s3);
        let api_on_main = move |request: axum::extract::Request| {
            let (mut api, main) = (api.clone(), main.clone());
            async move {
                match main.spawn(async move { api.call(request).await }).await {
                    Ok(Ok(response)) => response,
                    _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        };
        // S3's requests go there too, even to the router's paths.
        let to_main = api_on_main.clone();
        let app = router::routes(self.router.clone()).fallback(api_on_main).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let to_main = to_main.clone();
                async move {
                    match s3::addressed(request.headers()) {
                        true => to_main(request).await,
                        false => next.run(request).await,
                    }
                }
            },
        ));
        // Dropped when serving ends or this future is dropped: either way, every thread stops.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut threads = Vec::new();
        let connections = listener::Connections::new(self.limits.max_connections);
        let sweeper = tokio::spawn(connections.clone().sweep(self.limits.header_timeout));
        for n in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
            let listener =
                self.listener.try_clone().map_err(|source| Error::Listen { listen: self.listen(), source })?;
            let (app, stopped) = (app.clone(), stopped.clone());
            let (connections, limits) = (connections.clone(), self.limits.clone());
            let (finished, done) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("router-{n}"))
                .spawn(move || {
                    let _ = finished.send(serve_on_this_thread(listener, app, connections, limits, stopped));
                })
                .map_err(|source| Error::Listen { listen: self.listen(), source })?;
            threads.push(done);
        }
        shutdown.await;
        drop(stop);
        let mut result = Ok(());
        for done in threads {
            if let Ok(Err(source)) = done.await {
                result = Err(Error::Listen { listen: self.listen(), source });
            }
        }
        sweeper.abort();
        sampler.abort();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if self.advertise {
            let _ = std::fs::remove_file(&server_file);
        }
        result
    }

    /// Where it listens.
    fn listen(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Accepts and serves connections on a single-threaded runtime of this thread's own until `stopped` changes or its sender is dropped.
fn serve_on_this_thread(
    listener: std::net::TcpListener,
    app: axum::Router,
    connections: Arc<listener::Connections>,
    limits: listener::Limits,
    stopped: tokio::sync::watch::Receiver<()>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        listener::serve(listener, app, connections, limits, stopped).await;
        Ok(())
    })
}

/// The URL of the server running for this home, if one answers.
pub async fn running(home: &Home) -> Option<String> {
    let text = std::fs::read_to_string(home.server_file()).ok()?;
    let file: ServerFile = serde_json::from_str(&text).ok()?;
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().ok()?;
    // A server whose process is alive owns the home: a slow answer (a busy machine) is waited
    // for, so the CLI never acts beside it as if none ran.
    let alive =
        i32::try_from(file.pid).is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    let patience = if alive { Duration::from_secs(20) } else { Duration::ZERO };
    let started = std::time::Instant::now();
    loop {
        let answered = client.get(format!("{}/health", file.url)).send().await;
        if answered.is_ok_and(|answer| answer.status().is_success()) {
            return Some(file.url);
        }
        if started.elapsed() >= patience {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?.write_all(bytes)
}
