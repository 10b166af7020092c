//! Multi-model endpoints: models named by `X-Amzn-SageMaker-Target-Model`, loaded on first use and
//! kept in a least-recently-used cache under a memory budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// Loads a model by its name, e.g. `customer-7.tar.gz`; runs on a blocking thread.
pub type Loader = dyn Fn(&str) -> Result<(builtin::Model, u64), LoadError> + Send + Sync;

/// The models of one multi-model endpoint.
pub struct ModelCache {
    loader: Box<Loader>,
    budget_bytes: u64,
    state: Mutex<CacheState>,
    /// Each load's latency, read as a histogram (`/metrics` and the API).
    pub loads: Stats,
}

#[derive(Default)]
struct CacheState {
    tick: u64,
    used_bytes: u64,
    evictions: u64,
    models: HashMap<String, Cached>,
}

struct Cached {
    model: Arc<builtin::Model>,
    bytes: u64,
    last_used: u64,
}

/// What a cache holds, for the API.
#[derive(Debug, Serialize)]
pub struct CacheView {
    pub loaded: usize,
    pub loaded_bytes: u64,
    pub budget_bytes: u64,
    pub loads: u64,
    pub evictions: u64,
    pub load_p99_ms: Option<f64>,
}

impl ModelCache {
    /// A cache that keeps at most `budget_bytes` of models (as the loader counts them) and loads with `loader`.
    pub fn new(budget_bytes: u64, loader: Box<Loader>) -> ModelCache {
        ModelCache { loader, budget_bytes, state: Mutex::default(), loads: Stats::default() }
    }

    /// The model of that name, loading it (and evicting the least recently used) if it is not in memory.
    pub async fn get(self: &Arc<Self>, name: &str) -> Result<Arc<builtin::Model>, LoadError> {
        if let Some(model) = self.touch(name) {
            return Ok(model);
        }
        let started = Instant::now();
        let cache = self.clone();
        let owned = name.to_owned();
        let (model, bytes) = tokio::task::spawn_blocking(move || (cache.loader)(&owned))
            .await
            .map_err(|e| LoadError::Invalid(format!("loading {name}: {e}")))??;
        self.loads.record(200, started.elapsed());
        Ok(self.insert(name, Arc::new(model), bytes))
    }

    fn touch(&self, name: &str) -> Option<Arc<builtin::Model>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tick += 1;
        let tick = state.tick;
        let cached = state.models.get_mut(name)?;
        cached.last_used = tick;
        Some(cached.model.clone())
    }

    fn insert(&self, name: &str, model: Arc<builtin::Model>, bytes: u64) -> Arc<builtin::Model> {
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
            if let Some(evicted) = oldest.and_then(|n| state.models.remove(&n)) {
                state.used_bytes -= evicted.bytes;
                state.evictions += 1;
            }
        }
        state.used_bytes += bytes;
        state.models.insert(name.to_owned(), Cached { model: model.clone(), bytes, last_used: tick });
        model
    }

    pub fn view(&self) -> CacheView {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let loads = self.loads.snapshot();
        CacheView {
            loaded: state.models.len(),
            loaded_bytes: state.used_bytes,
            budget_bytes: self.budget_bytes,
            loads: loads.invocations,
            evictions: state.evictions,
            load_p99_ms: loads.latency_quantile_ms(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(budget: u64) -> Arc<ModelCache> {
        let json = br#"{"format":1,"algorithm":"decision-tree","task":"classification","n_features":1,"classes":["a"],"trees":[{"nodes":[{"f":-1,"t":0.0,"l":0,"r":0,"v":0.0}]}]}"#;
        Arc::new(ModelCache::new(
            budget,
            Box::new(move |name| match name {
                "missing" => Err(LoadError::NotFound(name.to_owned())),
                _ => Ok((builtin::Model::from_json(json, name).unwrap(), 10)),
            }),
        ))
    }

    #[tokio::test]
    async fn evicts_the_least_recently_used_past_the_budget() {
        let cache = cache(30);
        for name in ["a", "b", "c"] {
            cache.get(name).await.unwrap();
        }
        cache.get("a").await.unwrap(); // a is now the most recent; b the least
        cache.get("d").await.unwrap();
        let view = cache.view();
        assert_eq!((view.loaded, view.loaded_bytes, view.loads, view.evictions), (3, 30, 4, 1));
        cache.get("a").await.unwrap();
        assert_eq!(cache.view().loads, 4, "a stayed loaded");
        cache.get("b").await.unwrap();
        assert_eq!(cache.view().loads, 5, "b had been evicted");
        assert!(matches!(cache.get("missing").await, Err(LoadError::NotFound(_))));
    }
}
