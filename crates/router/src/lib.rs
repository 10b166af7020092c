//! The invocation router: the in-memory endpoint table and POST /endpoints/{name}/invocations.
//!
//! The table is an [`arc_swap::ArcSwap`] of an immutable map, so the request path
//! reads it without a lock and a deploy swaps a whole new map in at once. A request
//! holds an `Arc` of the endpoint it started on; a replaced endpoint is dropped (and
//! its instance stopped) only when its last request has finished, which is how a
//! deploy replaces a model without failing a request.

mod capture;
mod feedback;
mod invoke;
mod metrics;
mod multi_model;
mod stats;
mod upstream;

pub use capture::{Capture, CaptureConfig};
pub use feedback::{Accuracy, AccuracyView, two_proportion_p_value};
pub use invoke::{MAX_PAYLOAD_BYTES, routes, single_model_routes};
pub use metrics::VariantView;
pub use multi_model::{CacheView, LoadError, LoadedModel, Loader, ModelCache, Unloader};
pub use stats::{BUCKETS_US, Snapshot, Stats};
pub use upstream::{AddressCheck, Dial, Health, HealthStatus, InstanceView, Upstream};

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::http::HeaderValue;
use names::Name;

/// What answers an endpoint's invocations.
pub enum Instance {
    /// A built-in model, answered in-process with no extra hop.
    Builtin(Arc<builtin::Model>),
    /// A serial inference pipeline: the request goes through these endpoints in order, each
    /// answer (body and content type) the next one's request.
    Chain(Vec<Name>),
    /// Many built-in models, picked per request by `X-Amzn-SageMaker-Target-Model`.
    MultiModel(Arc<ModelCache>),
    /// Models loaded on demand into one model server through SageMaker's multi-model container
    /// API (`POST /models`, `POST /models/{name}/invoke`, `DELETE /models/{name}`).
    MultiModelServer {
        /// The model server.
        upstream: Upstream,
        /// Which models are loaded into it; evicting one unloads it from the server.
        cache: Arc<ModelCache<()>>,
        /// Keeps the server alive; dropping it stops the server.
        owner: Box<dyn Any + Send + Sync>,
    },
    /// A model server reached over HTTP (`/ping`, `/invocations`).
    Http {
        /// The model server.
        upstream: Upstream,
        /// Keeps the server process alive; dropping it stops the server.
        owner: Box<dyn Any + Send + Sync>,
    },
}

impl Instance {
    /// The model server behind it, if it is one reached over HTTP.
    pub fn upstream(&self) -> Option<&Upstream> {
        match self {
            Instance::Http { upstream, .. } | Instance::MultiModelServer { upstream, .. } => Some(upstream),
            Instance::Builtin(_) | Instance::MultiModel(_) | Instance::Chain(_) => None,
        }
    }

    /// The instance as the API shows it, with its health.
    pub fn view(&self) -> InstanceView {
        match self.upstream() {
            Some(upstream) => upstream.health.view(&upstream.base_url),
            None => InstanceView {
                url: "in-process".to_owned(),
                health: HealthStatus::InProcess,
                missed_pings: 0,
                checked_ms: None,
            },
        }
    }
}

/// A production variant: a model on its instances, with its own counters. Shared (`Arc`) between
/// successive versions of an endpoint's routing, so shifting traffic keeps a variant's instances and stats.
pub struct Variant {
    /// The name `X-Amzn-SageMaker-Target-Variant` picks and `X-Amzn-Invoked-Production-Variant` reports.
    pub name: Name,
    /// A label for what is served, e.g. `iris v3`.
    pub model: String,
    /// The instances that answer, taken in turn. `Arc`s, so a health check can swap one
    /// out by installing a copy of the variant that still holds the others.
    pub instances: Vec<Arc<Instance>>,
    /// What this variant has answered.
    pub stats: Stats,
    /// Ground truth sent back for its answers (A/B tests).
    pub accuracy: Accuracy,
    header: HeaderValue,
    next: AtomicUsize,
}

impl Variant {
    /// A variant served by `instances` (at least one).
    pub fn new(name: Name, model: String, instances: Vec<Arc<Instance>>) -> Variant {
        // A name is letters, digits and `-`: always a valid header value.
        let header = HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("AllTraffic"));
        Variant {
            name,
            model,
            instances,
            stats: Stats::default(),
            accuracy: Accuracy::default(),
            header,
            next: AtomicUsize::new(0),
        }
    }

    /// The same variant with `dead` replaced by `fresh`, keeping its counters' meaning (they start again).
    pub fn replacing(&self, dead: &Arc<Instance>, fresh: Arc<Instance>) -> Variant {
        let instances =
            self.instances.iter().map(|i| if Arc::ptr_eq(i, dead) { fresh.clone() } else { i.clone() }).collect();
        Variant::new(self.name.clone(), self.model.clone(), instances)
    }

    /// The instances in the order this request should try them: round robin, then the rest.
    fn turn(&self) -> impl Iterator<Item = &Arc<Instance>> {
        let count = self.instances.len().max(1);
        let first = self.next.fetch_add(1, Ordering::Relaxed) % count;
        self.instances[first..].iter().chain(&self.instances[..first])
    }
}

/// A named endpoint: its variants and the share of traffic each gets.
pub struct Endpoint {
    /// The name in `/endpoints/{name}/invocations`.
    pub name: Name,
    /// Variants with their weights; a request goes to one at random in proportion to its weight.
    pub variants: Vec<(Arc<Variant>, f64)>,
}

impl Endpoint {
    /// An endpoint with one variant taking all traffic.
    pub fn single(name: Name, variant: Arc<Variant>) -> Endpoint {
        Endpoint { name, variants: vec![(variant, 1.0)] }
    }

    /// Every instance of every variant.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.variants.iter().flat_map(|(v, _)| &v.instances)
    }

    /// The same endpoint with `dead` replaced by a fresh instance in whichever variant holds it.
    pub fn replacing(&self, dead: &Arc<Instance>, fresh: Arc<Instance>) -> Endpoint {
        let variants = self
            .variants
            .iter()
            .map(|(variant, weight)| {
                if variant.instances.iter().any(|i| Arc::ptr_eq(i, dead)) {
                    (Arc::new(variant.replacing(dead, fresh.clone())), *weight)
                } else {
                    (variant.clone(), *weight)
                }
            })
            .collect();
        Endpoint { name: self.name.clone(), variants }
    }

    /// The variant for a request: the one named by `target` (among those of that name, by weight), else by weight.
    pub fn choose(&self, target: Option<&str>) -> Option<&Arc<Variant>> {
        let eligible = |v: &Variant| target.is_none_or(|t| *v.name == *t);
        if let [(only, _)] = self.variants.as_slice() {
            return eligible(only).then_some(only);
        }
        let total: f64 = self.variants.iter().filter(|(v, _)| eligible(v)).map(|(_, w)| w.max(0.0)).sum();
        let mut pick = fastrand::f64() * total;
        let mut last = None;
        for (variant, weight) in self.variants.iter().filter(|(v, _)| eligible(v)) {
            // A targeted variant answers even at weight 0, as in SageMaker.
            if total <= 0.0 || pick < *weight {
                return Some(variant);
            }
            pick -= weight.max(0.0);
            last = Some(variant);
        }
        last
    }
}

/// The endpoint table shared by the HTTP listener and the engine.
pub struct Router {
    table: ArcSwap<HashMap<String, Arc<Endpoint>>>,
    /// Data capture by endpoint name, apart from the table so traffic shifts leave it alone.
    captures: ArcSwap<HashMap<String, Arc<Capture>>>,
    /// Recent answers of multi-variant endpoints, for ground truth sent back later.
    answers: feedback::Answers,
    /// How long a request may take to send its whole body.
    body_timeout: Duration,
}

/// How long a request may take to send its body unless the server says otherwise: SageMaker's invocation timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

impl Router {
    /// An empty table.
    pub fn new() -> Arc<Router> {
        Router::with_body_timeout(DEFAULT_BODY_TIMEOUT)
    }

    /// An empty table whose requests get `body_timeout` to send their bodies.
    pub fn with_body_timeout(body_timeout: Duration) -> Arc<Router> {
        Arc::new(Router {
            table: ArcSwap::from_pointee(HashMap::new()),
            captures: ArcSwap::from_pointee(HashMap::new()),
            answers: feedback::Answers::default(),
            body_timeout,
        })
    }

    /// Installs an endpoint, replacing any of the same name, and returns the one it replaced.
    ///
    /// New requests see the new endpoint at once; pass the old one to [`drain`].
    pub fn install(&self, endpoint: Endpoint) -> Option<Arc<Endpoint>> {
        let endpoint = Arc::new(endpoint);
        let mut previous = None;
        self.table.rcu(|table| {
            let mut table = HashMap::clone(table);
            previous = table.insert(endpoint.name.to_string(), endpoint.clone());
            table
        });
        previous
    }

    /// Captures a share of `endpoint`'s traffic, or stops capturing it (`None`).
    pub fn set_capture(&self, endpoint: &str, capture: Option<Capture>) {
        let capture = capture.map(Arc::new);
        self.captures.rcu(|captures| {
            let mut captures = HashMap::clone(captures);
            match &capture {
                Some(capture) => captures.insert(endpoint.to_owned(), capture.clone()),
                None => captures.remove(endpoint),
            };
            captures
        });
    }

    /// The endpoint's data capture, if it has one.
    pub(crate) fn capture(&self, endpoint: &str) -> Option<Arc<Capture>> {
        let captures = self.captures.load();
        if captures.is_empty() { None } else { captures.get(endpoint).cloned() }
    }

    /// Removes an endpoint (and its data capture) and returns it for draining.
    pub fn remove(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.set_capture(name, None);
        let mut previous = None;
        self.table.rcu(|table| {
            let mut table = HashMap::clone(table);
            previous = table.remove(name);
            table
        });
        previous
    }

    /// The endpoint of that name, if any.
    pub fn get(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.table.load().get(name).cloned()
    }

    /// Names of all endpoints, sorted.
    pub fn names(&self) -> Vec<Name> {
        let mut names: Vec<Name> = self.table.load().values().map(|e| e.name.clone()).collect();
        names.sort();
        names
    }
}

/// Waits until no request holds `old` any more (or `deadline` passes), then drops it, which stops its instance.
pub async fn drain(old: Arc<Endpoint>, deadline: Duration) {
    let started = Instant::now();
    while Arc::strong_count(&old) > 1 && started.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(old);
}
