//! How the router reaches an instance over HTTP: pooled keep-alive connections, each one checked once made.
//!
//! A container is reached on its bridge address when it has one: that skips Docker's userland proxy,
//! a whole extra hop on every request. Docker hands a dead container's address to the next container it
//! starts, so every new connection to that address is checked against the Engine before it carries a
//! request; a connection, once made, cannot change ends. A process-runtime instance listens in a
//! network namespace of its own, where no address of this machine reaches: each connection to it
//! is made there and handed over ([`Dial`]).

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, Response, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// SageMaker's limit on how long a model may take to answer an invocation.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Instances are on this machine: a connect that takes longer is to one that is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Asked after each new connection to an instance's direct address: does the instance still hold it?
/// If it does now, it did when the connection was made, so the connection reaches that instance.
pub type AddressCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Makes a new connection to an instance that no address reaches (one in a network namespace of its own).
pub type Dial = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>> + Send + Sync>;

/// One HTTP instance as the router sees it.
pub struct Upstream {
    /// `http://127.0.0.1:<port>`: where people and tools reach the instance (or, for one in a
    /// network namespace of its own, `netns:<pid>/127.0.0.1:8080`).
    pub base_url: String,
    /// Where invocations go: the base URL, or the instance's direct address.
    route: String,
    invocations: Uri,
    client: Client<Connect, Full<Bytes>>,
    /// What the health check last saw.
    pub health: Health,
}

/// What the health check has seen of one instance: when it last pinged it and how many pings in a row went unanswered.
#[derive(Default)]
pub struct Health {
    checked_ms: AtomicU64,
    missed: AtomicU32,
}

/// An instance's health as the API and the dashboard show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Answered in-process: nothing to ping.
    InProcess,
    /// Never pinged: the engine records the answer each instance gives at its start, so only one made elsewhere.
    Unchecked,
    /// Answered its last `/ping`.
    Healthy,
    /// Missed its last ping(s); replaced after two in a row.
    Unhealthy,
}

/// One instance of a variant.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceView {
    /// `http://127.0.0.1:<port>`, or `in-process`.
    pub url: String,
    pub health: HealthStatus,
    /// Pings in a row it did not answer.
    pub missed_pings: u32,
    /// When it was last pinged (ms since the epoch).
    pub checked_ms: Option<u64>,
}

impl Health {
    /// Records a ping's outcome at `now_ms`; returns how many pings in a row have now gone unanswered.
    pub fn record(&self, answered: bool, now_ms: u64) -> u32 {
        self.checked_ms.store(now_ms, Ordering::Relaxed);
        if answered {
            self.missed.store(0, Ordering::Relaxed);
            0
        } else {
            self.missed.fetch_add(1, Ordering::Relaxed) + 1
        }
    }

    fn status(&self) -> (HealthStatus, u32, Option<u64>) {
        let checked = self.checked_ms.load(Ordering::Relaxed);
        let missed = self.missed.load(Ordering::Relaxed);
        let status = match (checked, missed) {
            (0, _) => HealthStatus::Unchecked,
            (_, 0) => HealthStatus::Healthy,
            _ => HealthStatus::Unhealthy,
        };
        (status, missed, (checked != 0).then_some(checked))
    }

    pub(crate) fn view(&self, url: &str) -> InstanceView {
        let (health, missed_pings, checked_ms) = self.status();
        InstanceView { url: url.to_owned(), health, missed_pings, checked_ms }
    }
}

/// Why a request to an instance got no answer.
pub(crate) enum Failure {
    /// The instance took longer than [`INVOCATION_TIMEOUT`]; it may still be working on it.
    TimedOut,
    /// The request did not reach the instance, or the connection broke.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::TimedOut => write!(f, "timed out after {} s", INVOCATION_TIMEOUT.as_secs()),
            Failure::Failed(why) => f.write_str(why),
        }
    }
}

impl Upstream {
    /// An instance reached at `base_url` (`http://<host>:<port>`) and nowhere else.
    pub fn new(base_url: impl Into<String>) -> Upstream {
        let base_url = base_url.into();
        Upstream::build(base_url.clone(), base_url, Connect::Tcp { connector: tcp_connector(), check: None })
    }

    /// An instance at `base_url` whose invocations go to `address` (`<ip>:<port>`), over connections `check` confirms.
    pub fn direct(base_url: impl Into<String>, address: &str, check: AddressCheck) -> Upstream {
        let connect = Connect::Tcp { connector: tcp_connector(), check: Some(check) };
        Upstream::build(base_url.into(), format!("http://{address}"), connect)
    }

    /// An instance listening on `port` in a network namespace of its own, each connection made by `dial`;
    /// `label` says where it is, for people.
    pub fn dialed(label: impl Into<String>, port: u16, dial: Dial) -> Upstream {
        // What the server sees as its Host: its own address, as in a container.
        Upstream::build(label.into(), format!("http://127.0.0.1:{port}"), Connect::Dial(dial))
    }

    fn build(base_url: String, route: String, connect: Connect) -> Upstream {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connect);
        // A URL that does not parse fails each request with the reason, rather than the deploy.
        let invocations = format!("{route}/invocations").parse().unwrap_or_default();
        Upstream { base_url, route, invocations, client, health: Health::default() }
    }

    /// Whether invocations skip the base URL for a direct address.
    pub fn is_direct(&self) -> bool {
        self.route != self.base_url
    }

    /// `GET /ping` over the router's own connections: whether it answered 200 within two seconds.
    pub async fn ping(&self) -> bool {
        let Ok(uri) = format!("{}/ping", self.route).parse::<Uri>() else { return false };
        let Ok(request) = Request::get(uri).body(Full::new(Bytes::new())) else { return false };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.client.request(request)).await,
            Ok(Ok(response)) if response.status().is_success()
        )
    }

    /// `POST /invocations`.
    pub(crate) async fn invoke(&self, headers: &HeaderMap, body: Bytes) -> Result<Response<Body>, Failure> {
        self.post(self.invocations.clone(), headers, body).await
    }

    /// `POST <path>` (starting with `/`) on the instance.
    pub(crate) async fn post_to(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, Failure> {
        let uri = format!("{}{path}", self.route)
            .parse()
            .map_err(|e| Failure::Failed(format!("{path} is not a valid request path: {e}")))?;
        self.post(uri, headers, body).await
    }

    async fn post(&self, uri: Uri, headers: &HeaderMap, body: Bytes) -> Result<Response<Body>, Failure> {
        let mut request = Request::post(uri).body(Full::new(body)).map_err(|e| Failure::Failed(e.to_string()))?;
        for name in [header::CONTENT_TYPE, header::ACCEPT] {
            if let Some(value) = headers.get(&name) {
                request.headers_mut().insert(name, value.clone());
            }
        }
        if let Some(value) = headers.get(crate::invoke::CUSTOM_ATTRIBUTES) {
            request.headers_mut().insert(crate::invoke::CUSTOM_ATTRIBUTES, value.clone());
        }
        match tokio::time::timeout(INVOCATION_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.map(Body::new)),
            Ok(Err(e)) => Err(Failure::Failed(with_causes(&e))),
            Err(_) => Err(Failure::TimedOut),
        }
    }
}

/// `error: cause: cause`, since the client's own message ("client error (Connect)") says little alone.
fn with_causes(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn tcp_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector
}

/// How new connections to one instance are made.
#[derive(Clone)]
enum Connect {
    /// As hyper's own connector does, then the instance's address check, if it has one.
    Tcp { connector: HttpConnector, check: Option<AddressCheck> },
    /// By the instance's own dialer, within [`CONNECT_TIMEOUT`].
    Dial(Dial),
}

impl tower_service::Service<Uri> for Connect {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connect::Tcp { connector, .. } => connector.poll_ready(cx).map_err(Into::into),
            Connect::Dial(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self {
            Connect::Tcp { connector, check } => {
                let connecting = connector.call(uri);
                let check = check.clone();
                Box::pin(async move {
                    let stream = connecting.await?;
                    if let Some(check) = check
                        && !check().await
                    {
                        return Err("the container no longer holds this address (it stopped); not sending to it".into());
                    }
                    Ok(stream)
                })
            }
            Connect::Dial(dial) => {
                let dialing = dial();
                Box::pin(async move {
                    match tokio::time::timeout(CONNECT_TIMEOUT, dialing).await {
                        Ok(stream) => Ok(TokioIo::new(stream?)),
                        Err(_) => Err("the instance's sandbox did not hand over a connection within 1 s".into()),
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use axum::http::StatusCode;

    use super::*;

    /// A model server on a loopback port that counts the invocations it gets.
    async fn counting_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let app = axum::Router::new().route(
            "/invocations",
            axum::routing::post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { "answer\n" }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (address, count)
    }

    #[tokio::test]
    async fn a_direct_address_carries_requests_only_while_its_check_says_the_instance_holds_it() {
        let (address, count) = counting_server().await;
        let holds = Arc::new(AtomicBool::new(false));
        let flag = holds.clone();
        let check: AddressCheck = Arc::new(move || {
            let holds = flag.load(Ordering::SeqCst);
            Box::pin(async move { holds })
        });
        let upstream = Upstream::direct("http://127.0.0.1:9", &address, check);
        assert!(upstream.is_direct());

        let refused = upstream.invoke(&HeaderMap::new(), Bytes::from_static(b"1\n")).await;
        let Err(Failure::Failed(why)) = refused else { panic!("a connection the check refused carried a request") };
        assert!(why.contains("no longer holds this address"), "{why}");
        assert_eq!(count.load(Ordering::SeqCst), 0, "the request reached the server");

        holds.store(true, Ordering::SeqCst);
        let Ok(answer) = upstream.invoke(&HeaderMap::new(), Bytes::from_static(b"1\n")).await else {
            panic!("the checked connection carried no request")
        };
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_dialed_instance_is_reached_and_pinged_over_the_connections_its_dial_makes() {
        let (address, count) = counting_server().await;
        let dials = Arc::new(AtomicUsize::new(0));
        let dial: Dial = Arc::new({
            let dials = dials.clone();
            move || {
                dials.fetch_add(1, Ordering::SeqCst);
                let address = address.clone();
                Box::pin(async move { TcpStream::connect(address).await })
            }
        });
        let upstream = Upstream::dialed("netns:1/127.0.0.1:8080", 8080, dial);
        assert_eq!(upstream.base_url, "netns:1/127.0.0.1:8080");
        for _ in 0..3 {
            let Ok(answer) = upstream.invoke(&HeaderMap::new(), Bytes::from_static(b"1\n")).await else {
                panic!("the dialed connection carried no request")
            };
            assert_eq!(answer.status(), StatusCode::OK);
        }
        assert_eq!(count.load(Ordering::SeqCst), 3);
        // Kept alive between requests: one connection made for all three.
        assert_eq!(dials.load(Ordering::SeqCst), 1);
        // The counting server has no /ping: a 404 is not healthy.
        assert!(!upstream.ping().await);

        let refused: Dial = Arc::new(|| {
            Box::pin(async { Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "nothing listens")) })
        });
        let Err(Failure::Failed(why)) =
            Upstream::dialed("x", 8080, refused).invoke(&HeaderMap::new(), Bytes::new()).await
        else {
            panic!("a refused dial answered")
        };
        assert!(why.contains("nothing listens"), "{why}");
    }

    #[tokio::test]
    async fn an_instance_that_is_gone_is_a_failure_with_the_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let Err(Failure::Failed(why)) = Upstream::new(base_url).invoke(&HeaderMap::new(), Bytes::new()).await else {
            panic!("a closed port answered")
        };
        assert!(why.contains("onnect"), "{why}");
    }

    #[test]
    fn health_is_unchecked_until_pinged_then_counts_missed_pings_until_one_is_answered() {
        let health = Health::default();
        assert_eq!(health.view("u").health, HealthStatus::Unchecked);
        assert_eq!(health.record(true, 10), 0);
        assert_eq!((health.view("u").health, health.view("u").checked_ms), (HealthStatus::Healthy, Some(10)));
        assert_eq!(health.record(false, 20), 1);
        assert_eq!(health.record(false, 30), 2);
        let view = health.view("u");
        assert_eq!((view.health, view.missed_pings, view.checked_ms), (HealthStatus::Unhealthy, 2, Some(30)));
        assert_eq!(health.record(true, 40), 0);
        assert_eq!(health.view("u").health, HealthStatus::Healthy);
    }
}
