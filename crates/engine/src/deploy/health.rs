//! The health check: each instance pinged at an interval, and one that stops answering replaced.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use names::Name;
use router::{Endpoint, Instance};
use runtime::instance;
use store::EndpointKind;

use super::instances::instance_url;
use super::{DEFAULT_STARTUP_TIMEOUT, hosting_of};
use crate::{Engine, Error};

/// Consecutive failed pings after which an instance is replaced; one miss may be a busy server.
const FAILED_PINGS_BEFORE_REPLACING: u32 = 2;

impl Engine {
    /// Each `interval`, forever: deletes endpoints past their TTL, pings every instance behind the router,
    /// and replaces one that fails [`FAILED_PINGS_BEFORE_REPLACING`] times in a row with a fresh instance of the same model.
    pub async fn watch_health(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            self.delete_expired_endpoints().await;
            let mut checks = Vec::new();
            for name in self.inner.router.names() {
                let Some(endpoint) = self.inner.router.get(&name) else { continue };
                for instance in endpoint.instances() {
                    if instance.upstream().is_some() {
                        let (name, instance) = (name.clone(), instance.clone());
                        checks.push(async move {
                            let healthy = match instance.upstream() {
                                Some(upstream) => upstream.ping().await,
                                None => true,
                            };
                            (name, instance, healthy)
                        });
                    }
                }
            }
            let mut dead = Vec::new();
            let now = u64::try_from(store::now_ms()).unwrap_or(0);
            for (name, instance, healthy) in futures::future::join_all(checks).await {
                let Some(upstream) = instance.upstream() else { continue };
                if upstream.health.record(healthy, now) >= FAILED_PINGS_BEFORE_REPLACING {
                    let base_url = upstream.base_url.clone();
                    dead.push((name, instance, base_url));
                }
            }
            for (name, instance, base_url) in dead {
                tracing::warn!("endpoint {name}: the instance at {base_url} stopped answering /ping; replacing it");
                match self.replace_instance(&name, instance).await {
                    Ok(Some(fresh)) => tracing::warn!("endpoint {name}: replaced by an instance at {fresh}"),
                    Ok(None) => {}
                    Err(e) => tracing::error!("endpoint {name}: could not replace the instance at {base_url}: {e}"),
                }
            }
        }
    }

    /// Starts an instance of what `endpoint` serves and swaps it in for `dead`; `None` if a deploy replaced `dead` first.
    pub(super) async fn replace_instance(&self, endpoint: &Name, dead: Arc<Instance>) -> Result<Option<String>, Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let Some(current) = self.inner.router.get(endpoint) else { return Ok(None) };
        if !current.instances().any(|i| Arc::ptr_eq(i, &dead)) {
            return Ok(None);
        }
        if matches!(dead.as_ref(), Instance::MultiModelServer { .. }) {
            // Its loaded models went with it: a fresh container starts empty and loads on demand.
            let Some(record) = self.store().endpoint(endpoint).await? else { return Ok(None) };
            let EndpointKind::MultiModel { dir, memory_budget_bytes, image } = &record.kind else { return Ok(None) };
            let variant = self
                .multi_model_variant(
                    endpoint,
                    Path::new(dir),
                    image.as_deref(),
                    *memory_budget_bytes,
                    DEFAULT_STARTUP_TIMEOUT,
                )
                .await?;
            let url = variant.instances.first().map_or_else(|| "in-process".to_owned(), |i| instance_url(i));
            drop((current, dead));
            self.swap(Endpoint::single(endpoint.clone(), variant)).await;
            return Ok(Some(url));
        }
        let Some(holder) = current.variants.iter().find(|(v, _)| v.instances.iter().any(|i| Arc::ptr_eq(i, &dead)))
        else {
            return Ok(None);
        };
        let layout = self.layout(endpoint).await?;
        let Some(record) = layout.iter().find(|v| v.variant == holder.0.name) else { return Ok(None) };
        let version = self.store().model_version(&record.model_group, record.model_version).await?;
        let hosting = hosting_of(record)?;
        let limits = instance::limits(hosting.instance_type.as_deref())?;
        let fresh = Arc::new(self.start_instance(endpoint, &version, hosting.startup_timeout, limits).await?);
        let url = instance_url(&fresh);
        let next = current.replacing(&dead, fresh);
        drop((current, dead));
        self.swap(next).await;
        Ok(Some(url))
    }
}
