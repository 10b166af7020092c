//! Multi-model endpoints: models named by `X-Amzn-SageMaker-Target-Model`, loaded on first use and
//! kept in a least-recently-used cache under a memory budget: built-in models in memory, or models
//! loaded into a container through SageMaker's multi-model container API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::Serialize;

use crate::Stats;

/// Why a target model could not be loaded.
#[derive(Clone, Debug)]
pub enum LoadError {
    /// No model of that name.
    NotFound(String),
    /// The name or the model is not acceptable.
    Invalid(String),
    /// It is still loading after the cache's patience (SageMaker's ModelNotReadyException): the
    /// load goes on, and a later request gets the model.
    NotReady(String),
}

/// How long a request waits for its model to load before it is told to come back, as SageMaker's
/// multi-model endpoints do after 60 s.
pub const LOAD_PATIENCE: Duration = Duration::from_secs(60);

/// A load under way, which every request for the model waits on.
type Pending<T> = Shared<BoxFuture<'static, Result<(Arc<T>, u64, Duration), LoadError>>>;

/// Loads a model by its name, e.g. `customer-7.tar.gz`: what is kept, and how many bytes it counts for.
pub type Loader<T> = dyn Fn(String) -> BoxFuture<'static, Result<(T, u64), LoadError>> + Send + Sync;
/// Called with the name of a model that was evicted, to unload it where it lives.
pub type Unloader = dyn Fn(String) + Send + Sync;

/// The models of one multi-model endpoint.
pub struct ModelCache<T = builtin::Model> {
    loader: Box<Loader<T>>,
    unloader: Option<Box<Unloader>>,
    budget_bytes: u64,
    patience: Duration,
    state: Mutex<CacheState<T>>,
    /// Each load's latency, read as a histogram (`/metrics` and the API).
    pub loads: Stats,
}

struct CacheState<T> {
    tick: u64,
    used_bytes: u64,
    evictions: u64,
    models: HashMap<String, Cached<T>>,
    loading: HashMap<String, Pending<T>>,
}

struct Cached<T> {
    model: Arc<T>,
    bytes: u64,
    last_used: u64,
}

/// What a cache holds, for the API.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CacheView {
    pub loaded: usize,
    pub loaded_bytes: u64,
    pub budget_bytes: u64,
    pub loads: u64,
    pub evictions: u64,
    pub load_p99_ms: Option<f64>,
    /// The models loaded now, most recently used first, with their sizes.
    pub models: Vec<LoadedModel>,
}

/// A model a multi-model cache holds.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LoadedModel {
    pub name: String,
    pub bytes: u64,
}

impl<T: Send + Sync + 'static> ModelCache<T> {
    /// A cache that keeps at most `budget_bytes` of models (as the loader counts them), loads with
    /// `loader`, and tells `unloader` which models it evicted.
    pub fn new(budget_bytes: u64, loader: Box<Loader<T>>, unloader: Option<Box<Unloader>>) -> ModelCache<T> {
        let state =
            CacheState { tick: 0, used_bytes: 0, evictions: 0, models: HashMap::new(), loading: HashMap::new() };
        let patience = LOAD_PATIENCE;
        ModelCache { loader, unloader, budget_bytes, patience, state: Mutex::new(state), loads: Stats::default() }
    }

    /// The same cache, with requests waiting at most `patience` for a load.
    pub fn with_patience(self, patience: Duration) -> ModelCache<T> {
        ModelCache { patience, ..self }
    }

    /// The model of that name, loading it (and evicting the least recently used) if it is not
    /// loaded. Requests for a model that is loading wait on the same load, each for at most the
    /// cache's patience.
    pub async fn get(&self, name: &str) -> Result<Arc<T>, LoadError> {
        if let Some(model) = self.touch(name) {
            return Ok(model);
        }
        let pending = self.pending(name);
        let Ok(loaded) = tokio::time::timeout(self.patience, pending.clone()).await else {
            return Err(LoadError::NotReady(format!(
                "model {name} is still loading after {} s; try again",
                self.patience.as_secs_f64()
            )));
        };
        // The first request to see the load end records it; the others find the model in place.
        let first = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.loading.remove(name).is_some()
        };
        let (model, bytes, took) = loaded?;
        if first {
            self.loads.record(200, took);
        }
        Ok(self.insert(name, model, bytes))
    }

    /// The load of `name` under way, started now if none is; it runs on its own task, so it goes
    /// on when the requests waiting for it give up.
    fn pending(&self, name: &str) -> Pending<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = state.loading.get(name) {
            return pending.clone();
        }
        let load = (self.loader)(name.to_owned());
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let (model, bytes) = load.await?;
            Ok((Arc::new(model), bytes, started.elapsed()))
        });
        let pending = async move {
            task.await.unwrap_or_else(|e| Err(LoadError::Invalid(format!("loading the model failed: {e}"))))
        }
        .boxed()
        .shared();
        state.loading.insert(name.to_owned(), pending.clone());
        pending
    }

    fn touch(&self, name: &str) -> Option<Arc<T>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tick += 1;
        let tick = state.tick;
        let cached = state.models.get_mut(name)?;
        cached.last_used = tick;
        Some(cached.model.clone())
    }

    fn insert(&self, name: &str, model: Arc<T>, bytes: u64) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tick += 1;
        let tick = state.tick;
        if let Some(cached) = state.models.get_mut(name) {
            // Another request loaded it meanwhile; keep that one.
            cached.last_used = tick;
            return cached.model.clone();
        }
        // Make room first; a model bigger than the whole budget is still served, alone.
        while state.used_bytes + bytes > self.budget_bytes && !state.models.is_empty() {
            let oldest = state.models.iter().min_by_key(|(_, c)| c.last_used).map(|(n, _)| n.clone());
            if let Some((name, evicted)) = oldest.and_then(|n| state.models.remove(&n).map(|e| (n, e))) {
                state.used_bytes -= evicted.bytes;
                state.evictions += 1;
                if let Some(unload) = &self.unloader {
                    unload(name);
                }
            }
        }
        state.used_bytes += bytes;
        state.models.insert(name.to_owned(), Cached { model: model.clone(), bytes, last_used: tick });
        model
    }

    pub fn view(&self) -> CacheView {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let loads = self.loads.snapshot();
        let mut loaded: Vec<(&String, &Cached<T>)> = state.models.iter().collect();
        loaded.sort_by_key(|(_, cached)| std::cmp::Reverse(cached.last_used));
        let models = loaded.into_iter().map(|(name, c)| LoadedModel { name: name.clone(), bytes: c.bytes }).collect();
        CacheView {
            loaded: state.models.len(),
            loaded_bytes: state.used_bytes,
            budget_bytes: self.budget_bytes,
            loads: loads.invocations,
            evictions: state.evictions,
            load_p99_ms: loads.latency_quantile_ms(0.99),
            models,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(budget: u64, unloaded: Arc<Mutex<Vec<String>>>) -> Arc<ModelCache<String>> {
        Arc::new(ModelCache::new(
            budget,
            Box::new(|name| {
                Box::pin(async move {
                    match name.as_str() {
                        "missing" => Err(LoadError::NotFound(name)),
                        _ => Ok((name.to_uppercase(), 10)),
                    }
                })
            }),
            Some(Box::new(move |name| unloaded.lock().unwrap().push(name))),
        ))
    }

    #[tokio::test]
    async fn evicts_the_least_recently_used_past_the_budget() {
        let unloaded = Arc::new(Mutex::new(Vec::new()));
        let cache = cache(30, unloaded.clone());
        for name in ["a", "b", "c"] {
            assert_eq!(*cache.get(name).await.unwrap(), name.to_uppercase());
        }
        cache.get("a").await.unwrap(); // a is now the most recent; b the least
        cache.get("d").await.unwrap();
        let view = cache.view();
        assert_eq!((view.loaded, view.loaded_bytes, view.loads, view.evictions), (3, 30, 4, 1));
        assert_eq!(*unloaded.lock().unwrap(), ["b"]);
        cache.get("a").await.unwrap();
        assert_eq!(cache.view().loads, 4, "a stayed loaded");
        cache.get("b").await.unwrap();
        assert_eq!(cache.view().loads, 5, "b had been evicted");
        assert!(matches!(cache.get("missing").await, Err(LoadError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_slow_load_says_not_ready_goes_on_and_is_shared_by_every_request_for_it() {
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = started.clone();
        let cache: Arc<ModelCache<String>> = Arc::new(
            ModelCache::new(
                100,
                Box::new(move |name| {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Box::pin(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok((name, 10))
                    })
                }),
                None,
            )
            .with_patience(Duration::from_millis(50)),
        );
        let (a, b) = tokio::join!(cache.get("slow"), cache.get("slow"));
        assert!(matches!(a, Err(LoadError::NotReady(_))) && matches!(b, Err(LoadError::NotReady(_))));
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1, "one load for both requests");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let asked = Instant::now();
        assert_eq!(*cache.get("slow").await.unwrap(), "slow");
        assert!(asked.elapsed() < Duration::from_millis(50), "the load went on while nobody waited");
        assert_eq!((cache.view().loads, started.load(std::sync::atomic::Ordering::SeqCst)), (1, 1));
    }
}
