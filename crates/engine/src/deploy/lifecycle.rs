//! An endpoint's life beyond a deploy: brought back when a server starts, deleted, expired.

use std::path::Path;

use names::Name;
use router::Endpoint;
use store::{EndpointKind, EndpointRecord};

use super::{DEFAULT_STARTUP_TIMEOUT, chain_variant, hosting_of};
use crate::{Engine, Error};

impl Engine {
    /// Brings back every recorded endpoint with its variants (server start-up); returns each endpoint's result.
    pub async fn restore_endpoints(&self) -> Vec<(String, Result<String, Error>)> {
        let records = match self.store().endpoints().await {
            Ok(records) => records,
            Err(e) => return vec![("(all)".to_owned(), Err(e.into()))],
        };
        let mut results = Vec::new();
        for record in records {
            // A name recorded before names were checked never becomes a path.
            let name = match Name::parse(&record.name) {
                Ok(name) => name,
                Err(e) => {
                    results.push((
                        names::excerpt(&record.name, 40),
                        Err(Error::Invalid(format!("recorded endpoint: {e}"))),
                    ));
                    continue;
                }
            };
            // Model folders left by a process that died; each new instance unpacks its own.
            let _ = std::fs::remove_dir_all(self.home().endpoint_dir(&name));
            let result = self.restore_endpoint(&name, &record).await.map(|()| self.invocation_url(&name));
            self.apply_capture(&name, record.capture_percent);
            results.push((record.name, result));
        }
        results
    }

    pub(super) async fn restore_endpoint(&self, name: &Name, record: &EndpointRecord) -> Result<(), Error> {
        match &record.kind {
            EndpointKind::Chain { steps } => {
                let steps: Vec<Name> = steps
                    .iter()
                    .map(|s| Name::parse(s))
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::Invalid(format!("the recorded steps of inference pipeline {name}: {e}")))?;
                self.swap(Endpoint::single(name.clone(), chain_variant(&steps))).await;
                return Ok(());
            }
            EndpointKind::MultiModel { dir, memory_budget_bytes, image } => {
                let variant = self
                    .multi_model_variant(
                        name,
                        Path::new(dir),
                        image.as_deref(),
                        *memory_budget_bytes,
                        DEFAULT_STARTUP_TIMEOUT,
                    )
                    .await?;
                self.swap(Endpoint::single(name.clone(), variant)).await;
                return Ok(());
            }
            EndpointKind::Model { .. } => {}
        }
        let layout = self.layout(name).await?;
        let mut variants = Vec::new();
        for v in &layout {
            let version = self.store().model_version(&v.model_group, v.model_version).await?;
            variants.push((self.start_variant(name, &version, &hosting_of(v)?).await?, v.weight));
        }
        self.swap(Endpoint { name: name.clone(), variants }).await;
        Ok(())
    }

    /// Stops serving an endpoint (its in-flight requests finish first) and forgets it; whether it existed.
    pub async fn delete_endpoint(&self, endpoint: &Name) -> Result<bool, Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let existed = self.store().delete_endpoint(endpoint).await?;
        self.retire(self.inner.router.remove(endpoint)).await;
        let _ = std::fs::remove_dir_all(self.home().endpoint_dir(endpoint));
        Ok(existed)
    }

    /// Deletes the endpoints whose TTL has passed; their names.
    pub async fn delete_expired_endpoints(&self) -> Vec<Name> {
        let now = store::now_ms();
        let expired: Vec<Name> = match self.store().endpoints().await {
            Ok(records) => records
                .into_iter()
                .filter(|r| r.expires_at.is_some_and(|at| at <= now))
                .filter_map(|r| Name::parse(&r.name).ok())
                .collect(),
            Err(e) => {
                tracing::warn!("listing endpoints for their TTL: {e}");
                return Vec::new();
            }
        };
        for name in &expired {
            match self.delete_endpoint(name).await {
                Ok(_) => {
                    tracing::warn!("endpoint {name}: its TTL passed; deleted");
                    self.audit("ttl", &format!("delete endpoint {name}"), 200).await;
                }
                Err(e) => tracing::error!("endpoint {name}: deleting it after its TTL: {e}"),
            }
        }
        expired
    }
}
