//! Multi-model endpoints: models named by `X-Amzn-SageMaker-Target-Model`, loaded on first use and
//! kept in a least-recently-used cache under a memory budget: built-in models in memory, or models
//! loaded into a container through SageMaker's multi-model container API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::Stats;

/// Why a target model could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// No model of that name (a 404 for the caller).
    NotFound(String),
    /// The name or the model is not acceptable (a 400).
    Invalid(String),
}

/// Loads a model by its name, e.g. `customer-7.tar.gz`: what is kept, and how many bytes it counts for.
pub type Loader<T> = dyn Fn(String) -> BoxFuture<'static, Result<(T, u64), LoadError>> + Send + Sync;
/// Called with the name of a model that was evicted, to unload it where it lives.
pub type Unloader = dyn Fn(String) + Send + Sync;

/// The models of one multi-model endpoint.
pub struct ModelCache<T = builtin::Model> {
    loader: Box<Loader<T>>,
    unloader: Option<Box<Unloader>>,
    budget_bytes: u64,
    state: Mutex<CacheState<T>>,
    /// Each load's latency, read as a histogram (`/metrics` and the API).
    pub loads: Stats,
}

struct CacheState<T> {
    tick: u64,
    used_bytes: u64,
    evictions: u64,
    models: HashMap<String, Cached<T>>,
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
        let state = CacheState { tick: 0, used_bytes: 0, evictions: 0, models: HashMap::new() };
        ModelCache { loader, unloader, budget_bytes, state: Mutex::new(state), loads: Stats::default() }
    }

    /// The model of that name, loading it (and evicting the least recently used) if it is not loaded.
    pub async fn get(&self, name: &str) -> Result<Arc<T>, LoadError> {
        if let Some(model) = self.touch(name) {
            return Ok(model);
        }
        let started = Instant::now();
        let (model, bytes) = (self.loader)(name.to_owned()).await?;
        self.loads.record(200, started.elapsed());
        Ok(self.insert(name, Arc::new(model), bytes))
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
}
