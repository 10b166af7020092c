//! Starting an endpoint's instances: a built-in model in-process, a model server through the
//! serving backend, or a multi-model container whose models the router's cache loads through
//! [`MultiModelClient`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use names::Name;
use router::{Instance, LoadError, ModelCache, Variant};
use runtime::Algorithm;
use runtime::instance;
use runtime::multi_model::MultiModelClient;
use runtime::opt_ml::OptMl;
use store::ModelVersionRecord;

use super::Hosting;
use crate::backend::ServeRequest;
use crate::{Engine, Error};

impl Engine {
    pub(super) async fn multi_model_variant(
        &self,
        endpoint: &Name,
        dir: &Path,
        image: Option<&str>,
        budget_bytes: u64,
        startup_timeout: Duration,
    ) -> Result<Arc<Variant>, Error> {
        let Some(image) = image else { return Ok(builtin_multi_model_variant(dir, budget_bytes)) };
        let instance_dir =
            ModelDir(self.home().endpoint_dir(endpoint).join(format!("multi-model-{}", runtime::unique_suffix())));
        let opt_ml = OptMl::create_for_hosting(&instance_dir.0)?;
        let models = opt_ml.root.join("models");
        std::fs::create_dir_all(&models).map_err(crate::error::io_error(&models))?;
        let log = self.home().endpoint_log(endpoint);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
        }
        let labels = self.container_labels();
        let algorithm = Algorithm::Image(image.to_owned());
        let server = self
            .inner
            .backends
            .serving(&algorithm)?
            .start(ServeRequest {
                algorithm: &algorithm,
                opt_ml: &opt_ml,
                log: &log,
                startup_timeout,
                limits: instance::limits(None)?,
                labels: &labels,
                name_hint: endpoint,
                sagebrush_exe: &self.inner.sagebrush_exe,
            })
            .await?;
        let client = MultiModelClient::new(&server.upstream.base_url, models)?;
        let loader = {
            let (folder, client) = (dir.to_owned(), client.clone());
            move |name: String| -> futures::future::BoxFuture<'static, Result<((), u64), LoadError>> {
                let (folder, client) = (folder.clone(), client.clone());
                Box::pin(async move {
                    // Off the router thread that asked: the read blocks.
                    let archive = {
                        let name = name.clone();
                        tokio::task::spawn_blocking(move || read_model_archive(&folder, &name))
                            .await
                            .map_err(|e| LoadError::Invalid(e.to_string()))??
                    };
                    let size = archive.len() as u64;
                    client.load(&name, archive).await.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    Ok(((), size))
                })
            }
        };
        let unloader = move |name: String| {
            let client = client.clone();
            tokio::spawn(async move { client.unload(&name).await });
        };
        let cache = Arc::new(ModelCache::new(budget_bytes, Box::new(loader), Some(Box::new(unloader))));
        answered_at_start(&server.upstream);
        let instance = Instance::MultiModelServer {
            upstream: server.upstream,
            cache,
            owner: Box::new((server.owner, instance_dir)),
        };
        Ok(Arc::new(Variant::new(
            Name::all_traffic(),
            format!("multi-model {image} {}", dir.display()),
            vec![Arc::new(instance)],
        )))
    }

    /// Starts a variant's instances for `version` and waits until each answers `/ping`.
    pub(super) async fn start_variant(
        &self,
        endpoint: &Name,
        version: &ModelVersionRecord,
        hosting: &Hosting,
    ) -> Result<Arc<Variant>, Error> {
        let limits = instance::limits(hosting.instance_type.as_deref())?;
        let count = if version.algorithm.starts_with("builtin:") { 1 } else { hosting.instances.max(1) };
        let starts = (0..count).map(|_| self.start_instance(endpoint, version, hosting.startup_timeout, limits));
        // If one fails, the others are dropped here, which stops them.
        let instances = futures::future::try_join_all(starts).await?;
        let model = format!("{} v{}", version.model_group, version.version);
        Ok(Arc::new(Variant::new(hosting.variant.clone(), model, instances.into_iter().map(Arc::new).collect())))
    }

    pub(super) async fn start_instance(
        &self,
        endpoint: &Name,
        version: &ModelVersionRecord,
        startup_timeout: Duration,
        limits: instance::Limits,
    ) -> Result<Instance, Error> {
        let nonce = runtime::unique_suffix();
        let dir = ModelDir(
            self.home().endpoint_dir(endpoint).join(format!("{}-v{}-{nonce}", version.model_group, version.version)),
        );
        let opt_ml = OptMl::create_for_hosting(&dir.0)?;
        let bytes = self.inner.artifacts.get(&version.artifact_uri, Some(&version.artifact_sha256)).await?;
        runtime::archive::unpack(&bytes, &opt_ml.model_dir())?;
        let log = self.home().endpoint_log(endpoint);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(crate::error::io_error(parent))?;
        }
        match Algorithm::from_reference(&version.algorithm) {
            // Loaded into memory, so the folder goes with `dir` at the end of this call.
            Some(Algorithm::Builtin(_)) => Ok(Instance::Builtin(Arc::new(builtin::Model::load(&opt_ml.model_dir())?))),
            Some(algorithm) => {
                let labels = self.container_labels();
                let request = ServeRequest {
                    algorithm: &algorithm,
                    opt_ml: &opt_ml,
                    log: &log,
                    startup_timeout,
                    limits,
                    labels: &labels,
                    name_hint: endpoint,
                    sagebrush_exe: &self.inner.sagebrush_exe,
                };
                let server = self.inner.backends.serving(&algorithm)?.start(request).await?;
                answered_at_start(&server.upstream);
                Ok(Instance::Http { upstream: server.upstream, owner: Box::new((server.owner, dir)) })
            }
            None => Err(Error::Invalid(format!(
                "model {} v{} has an unknown algorithm `{}`",
                version.model_group, version.version, version.algorithm
            ))),
        }
    }
}

/// An instance's unpacked model folder, removed with the instance (after its server, which is dropped first).
pub(super) struct ModelDir(PathBuf);

impl Drop for ModelDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One variant answering from a cache of the built-in models in `dir`. A model counts against the
/// budget with the size of its `model.json`, a stable stand-in for what it takes in memory.
pub(super) fn builtin_multi_model_variant(dir: &Path, budget_bytes: u64) -> Arc<Variant> {
    let folder = dir.to_owned();
    let loader = move |name: String| -> futures::future::BoxFuture<'static, Result<(builtin::Model, u64), LoadError>> {
        let folder = folder.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let bytes = read_model_archive(&folder, &name)?;
                let json = runtime::archive::read_member(&bytes, "model.json")
                    .map_err(|e| LoadError::Invalid(format!("{name}: {e}")))?
                    .ok_or_else(|| LoadError::Invalid(format!("{name} has no model.json")))?;
                let model = builtin::Model::from_json(&json, &name).map_err(|e| LoadError::Invalid(e.to_string()))?;
                Ok((model, json.len() as u64))
            })
            .await
            .map_err(|e| LoadError::Invalid(e.to_string()))?
        })
    };
    let cache = Arc::new(ModelCache::new(budget_bytes, Box::new(loader), None));
    Arc::new(Variant::new(
        Name::all_traffic(),
        format!("multi-model {}", dir.display()),
        vec![Arc::new(Instance::MultiModel(cache))],
    ))
}

/// The bytes of `<folder>/<name>`, where `name` must be a plain file name (no path can be named).
pub(super) fn read_model_archive(folder: &Path, name: &str) -> Result<Vec<u8>, LoadError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !plain {
        return Err(LoadError::Invalid(format!(
            "target model `{name}` must be a file name of letters, digits, `.`, `-` and `_`"
        )));
    }
    std::fs::read(folder.join(name)).map_err(|_| LoadError::NotFound(format!("no model {name} on this endpoint")))
}

/// A started instance has answered `/ping` (its start waits for that): its health shows so until the first check.
fn answered_at_start(upstream: &router::Upstream) {
    upstream.health.record(true, u64::try_from(store::now_ms()).unwrap_or(0));
}

/// Where an instance is, for the log: its base URL, or `in-process`.
pub(super) fn instance_url(instance: &Instance) -> String {
    instance.view().url
}
