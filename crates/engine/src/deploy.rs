//! Deploying a model version to an endpoint: unpack, start, wait healthy, record, swap, drain the old one.
//!
//! The new instance must be serving before it takes traffic, and the old one is
//! dropped only after its in-flight requests end, so an update fails no request.

use std::sync::Arc;
use std::time::Duration;

use router::{Endpoint, Instance};
use runtime::Algorithm;
use runtime::hosting::{ContainerInstance, ProcessInstance};
use runtime::opt_ml::OptMl;
use store::ModelVersionRecord;

use crate::{Engine, Error};

/// How long a model server gets to answer `/ping`.
/// How long a new instance gets to answer `/ping`, unless the deploy stage sets `startup_timeout`.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a replaced instance may keep finishing its requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

impl Engine {
    /// Makes `endpoint` serve `version`, and returns the endpoint's invocation URL.
    pub async fn deploy(
        &self,
        endpoint: &str,
        version: &ModelVersionRecord,
        run_id: i64,
        startup_timeout: Duration,
    ) -> Result<String, Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let (instance, model_dir) = self.start_instance(endpoint, version, startup_timeout).await?;
        // Recorded before it takes traffic: after a crash the restart serves what was last deployed.
        self.store().set_endpoint(endpoint, &version.model_group, version.version, run_id).await?;
        let replaced = self.inner.router.install(Endpoint {
            name: endpoint.to_owned(),
            variant: router::DEFAULT_VARIANT.to_owned(),
            model: format!("{} v{}", version.model_group, version.version),
            instance,
        });
        if let Some(old) = replaced {
            router::drain(old, DRAIN_DEADLINE).await;
        }
        self.remove_other_model_dirs(endpoint, &model_dir);
        Ok(self.invocation_url(endpoint))
    }

    /// Brings back every recorded endpoint (server start-up); returns each endpoint's result.
    pub async fn restore_endpoints(&self) -> Vec<(String, Result<String, Error>)> {
        let records = match self.store().endpoints().await {
            Ok(records) => records,
            Err(e) => return vec![("(all)".to_owned(), Err(e.into()))],
        };
        let mut results = Vec::new();
        for record in records {
            let result = async {
                let version = self.store().model_version(&record.model_group, record.model_version).await?;
                self.deploy(&record.name, &version, record.run_id, DEFAULT_STARTUP_TIMEOUT).await
            }
            .await;
            results.push((record.name, result));
        }
        results
    }

    /// `<router>/endpoints/<name>/invocations`.
    pub fn invocation_url(&self, endpoint: &str) -> String {
        format!("{}/endpoints/{endpoint}/invocations", self.router_url())
    }

    async fn start_instance(
        &self,
        endpoint: &str,
        version: &ModelVersionRecord,
        startup_timeout: Duration,
    ) -> Result<(Instance, std::path::PathBuf), Error> {
        let nonce = store::now_ms();
        let dir =
            self.home().endpoint_dir(endpoint).join(format!("{}-v{}-{nonce}", version.model_group, version.version));
        let opt_ml = OptMl::create_for_hosting(&dir)?;
        let bytes = self.inner.artifacts.get(&version.artifact_uri, Some(&version.artifact_sha256)).await?;
        runtime::archive::unpack(&bytes, &opt_ml.model_dir())?;
        let instance = match Algorithm::from_reference(&version.algorithm) {
            Some(Algorithm::Builtin(_)) => Instance::Builtin(Arc::new(builtin::Model::load(&opt_ml.model_dir())?)),
            Some(Algorithm::Process(algorithm_dir)) => {
                let log = self.home().endpoint_log(endpoint);
                if let Some(parent) = log.parent() {
                    std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
                }
                let server = ProcessInstance::start(&algorithm_dir, &opt_ml, &log, startup_timeout).await?;
                Instance::Http { base_url: server.base_url.clone(), owner: Box::new(server) }
            }
            Some(Algorithm::Image(image)) => {
                let log = self.home().endpoint_log(endpoint);
                if let Some(parent) = log.parent() {
                    std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
                }
                let labels = self.container_labels();
                let server =
                    ContainerInstance::start(&image, &opt_ml, &log, startup_timeout, &labels, endpoint).await?;
                Instance::Http { base_url: server.base_url.clone(), owner: Box::new(server) }
            }
            None => {
                return Err(Error::Invalid(format!(
                    "model {} v{} has an unknown algorithm `{}`",
                    version.model_group, version.version, version.algorithm
                )));
            }
        };
        Ok((instance, dir))
    }

    async fn endpoint_lock(&self, endpoint: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.deploy_locks.lock().await;
        locks.entry(endpoint.to_owned()).or_default().clone()
    }

    fn remove_other_model_dirs(&self, endpoint: &str, keep: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(self.home().endpoint_dir(endpoint)) else { return };
        for entry in entries.flatten() {
            if entry.path() != keep {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
