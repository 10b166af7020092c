//! Deploying a model version to an endpoint: unpack, start its instances, wait healthy, record, swap, drain the old ones.
//!
//! New instances must be serving before they take traffic, and old ones are dropped
//! only after their in-flight requests end, so an update fails no request. A health
//! check replaces an instance that stops answering `/ping` the same way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pipeline::{DeployPolicy, Traffic};
use router::{AddressCheck, Endpoint, Instance, LoadError, ModelCache, Upstream, Variant};
use runtime::Algorithm;
use runtime::docker;
use runtime::hosting::{ContainerInstance, ProcessInstance};
use runtime::opt_ml::OptMl;
use store::{EndpointRecord, ModelVersionRecord, VariantRecord};

use names::Name;

use crate::{Engine, Error};

/// How long a new instance gets to answer `/ping`, unless the deploy stage sets `startup_timeout`.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A data capture file is closed past this size...
const CAPTURE_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// ...and only this many of the newest are kept.
const CAPTURE_FILES: usize = 10;
/// How long a replaced instance may keep finishing its requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);
/// Consecutive failed pings after which an instance is replaced; one miss may be a busy server.
const FAILED_PINGS_BEFORE_REPLACING: u32 = 2;

/// How an endpoint is hosted: SageMaker's endpoint config for one variant.
#[derive(Clone, Debug)]
pub struct Hosting {
    /// How long each new instance gets to answer `/ping`.
    pub startup_timeout: Duration,
    /// How many instances serve the endpoint. The built-in algorithm always has one: it
    /// answers in-process on every core.
    pub instances: u32,
    /// The instance type whose CPU and memory each container gets; `None` is [`docker::DEFAULT_INSTANCE_TYPE`].
    pub instance_type: Option<String>,
    /// The production variant the model goes into.
    pub variant: Name,
    /// For an A/B deploy: the variant's weight, keeping the endpoint's other variants. `None` replaces them all.
    pub weight: Option<f64>,
    /// Delete the endpoint this long after this deploy.
    pub ttl: Option<Duration>,
}

impl Default for Hosting {
    fn default() -> Hosting {
        Hosting {
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            instances: 1,
            instance_type: None,
            variant: Name::all_traffic(),
            weight: None,
            ttl: None,
        }
    }
}

impl Engine {
    /// Makes `endpoint` serve `version` on `hosting.instances` instances, shifting traffic as
    /// `policy` says when it already serves a model; returns what happened, step by step.
    ///
    /// When an alarm of `policy` fires on the new model, the endpoint goes back to what it
    /// served, the new instances are stopped, and the error is [`Error::RolledBack`].
    pub async fn deploy(
        &self,
        endpoint: &Name,
        version: &ModelVersionRecord,
        run_id: i64,
        hosting: &Hosting,
        policy: &DeployPolicy,
        events: &mut Vec<String>,
    ) -> Result<(), Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let fresh = self.start_variant(endpoint, version, hosting).await?;
        let model = fresh.model.clone();
        events.push(format!("{model} is up on {} instance(s) as variant {}", fresh.instances.len(), fresh.name));
        let previous = self.inner.router.get(endpoint);
        let mut layout = match &previous {
            Some(_) => self.layout(endpoint).await?,
            None => Vec::new(),
        };
        let record = VariantRecord {
            variant: hosting.variant.to_string(),
            model_group: version.model_group.clone(),
            model_version: version.version,
            weight: hosting.weight.unwrap_or(1.0),
            instances: i64::from(hosting.instances),
            instance_type: hosting.instance_type.clone(),
        };
        let next = match (&previous, hosting.weight) {
            // A/B: this variant is replaced (or added) at its weight; the others keep serving as they are.
            (Some(previous), Some(weight)) => {
                layout.retain(|v| v.variant != hosting.variant);
                let mut variants: Vec<(Arc<Variant>, f64)> =
                    previous.variants.iter().filter(|(v, _)| v.name != hosting.variant).cloned().collect();
                variants.push((fresh, weight));
                Endpoint { name: endpoint.clone(), variants }
            }
            (Some(previous), None) if policy.traffic != Traffic::AllAtOnce => {
                for share in policy.traffic.steps() {
                    self.inner.router.install(shifted(previous, &fresh, share));
                    events.push(format!("{:.0}% of traffic goes to {model}; baking {:?}", share * 100.0, policy.bake));
                    if let Some(alarm) = bake(&fresh, policy).await {
                        let restored = Endpoint { name: endpoint.clone(), variants: previous.variants.clone() };
                        let mixed = self.inner.router.install(restored);
                        events.push(format!("alarm: {alarm}; all traffic is back on what the endpoint served"));
                        drop(fresh);
                        if let Some(mixed) = mixed {
                            router::drain(mixed, DRAIN_DEADLINE).await;
                        }
                        return Err(Error::RolledBack(alarm));
                    }
                }
                layout.clear();
                Endpoint::single(endpoint.clone(), fresh)
            }
            _ => {
                layout.clear();
                Endpoint::single(endpoint.clone(), fresh)
            }
        };
        layout.push(record);
        // Recorded before the old model goes: after a crash the restart serves what was last deployed.
        self.store()
            .set_endpoint(&EndpointRecord {
                model_group: version.model_group.clone(),
                model_version: version.version,
                instances: i64::from(hosting.instances),
                instance_type: hosting.instance_type.clone(),
                ..endpoint_record(endpoint, "", run_id, hosting.ttl)
            })
            .await?;
        self.store().set_endpoint_variants(endpoint, &layout).await?;
        let replaced = self.inner.router.install(next);
        drop(previous);
        if let Some(old) = replaced {
            router::drain(old, DRAIN_DEADLINE).await;
        }
        events.push(format!(
            "{model} serves {}",
            if hosting.weight.is_some() { "its share of traffic" } else { "all traffic" }
        ));
        Ok(())
    }

    /// Makes `endpoint` a multi-model endpoint over the `<name>.tar.gz` files in `dir`, keeping at most
    /// `budget_bytes` of them loaded: built-in models in-process, or, with `image`, loaded into one
    /// `<image> serve` container through SageMaker's multi-model container API.
    #[allow(clippy::too_many_arguments)]
    pub async fn deploy_multi_model(
        &self,
        endpoint: &Name,
        dir: &Path,
        image: Option<&str>,
        budget_bytes: u64,
        startup_timeout: Duration,
        run_id: i64,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "multi_model: {} is not a folder of model.tar.gz files",
                dir.display()
            )));
        }
        let record = EndpointRecord {
            multi_model_dir: Some(dir.display().to_string()),
            memory_budget_bytes: Some(i64::try_from(budget_bytes).unwrap_or(i64::MAX)),
            multi_model_image: image.map(str::to_owned),
            ..endpoint_record(endpoint, MULTI_MODEL_GROUP, run_id, ttl)
        };
        let variant = self.multi_model_variant(endpoint, dir, image, budget_bytes, startup_timeout).await?;
        self.install_recorded(endpoint, record, variant).await
    }

    async fn multi_model_variant(
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
        let limits = docker::limits(None)?;
        let labels = self.container_labels();
        let server = ContainerInstance::start(image, &opt_ml, &log, startup_timeout, &labels, limits, endpoint).await?;
        let base_url = server.base_url.clone();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let loader = {
            let (folder, models, base_url, client) = (dir.to_owned(), models.clone(), base_url.clone(), client.clone());
            move |name: String| -> futures::future::BoxFuture<'static, Result<((), u64), LoadError>> {
                let (folder, models, base_url, client) =
                    (folder.clone(), models.clone(), base_url.clone(), client.clone());
                Box::pin(async move {
                    // Off the router thread that asked: a read and an unpack block.
                    let (archive, into) = (name.clone(), models.join(&name));
                    let size = tokio::task::spawn_blocking(move || {
                        let bytes = read_model_archive(&folder, &archive)?;
                        runtime::archive::unpack(&bytes, &into)
                            .map_err(|e| LoadError::Invalid(format!("{archive}: {e}")))?;
                        Ok::<_, LoadError>(bytes.len() as u64)
                    })
                    .await
                    .map_err(|e| LoadError::Invalid(e.to_string()))??;
                    let request = serde_json::json!({ "model_name": name, "url": format!("/opt/ml/models/{name}") });
                    let answer = client.post(format!("{base_url}/models")).json(&request).send().await;
                    match answer {
                        Ok(r) if r.status().is_success() => Ok(((), size)),
                        Ok(r) => {
                            Err(LoadError::Invalid(format!("the model server did not load {name}: {}", r.status())))
                        }
                        Err(e) => Err(LoadError::Invalid(format!("the model server did not load {name}: {e}"))),
                    }
                })
            }
        };
        let unloader = move |name: String| {
            let (client, base_url, dir) = (client.clone(), base_url.clone(), models.join(&name));
            tokio::spawn(async move {
                let _ = client.delete(format!("{base_url}/models/{name}")).send().await;
                let _ = tokio::fs::remove_dir_all(dir).await;
            });
        };
        let cache = Arc::new(ModelCache::new(budget_bytes, Box::new(loader), Some(Box::new(unloader))));
        let instance = Instance::MultiModelServer {
            upstream: container_upstream(&server),
            cache,
            owner: Box::new((server, instance_dir)),
        };
        Ok(Arc::new(Variant::new(
            Name::all_traffic(),
            format!("multi-model {image} {}", dir.display()),
            vec![Arc::new(instance)],
        )))
    }

    /// Makes `endpoint` a serial inference pipeline through the endpoints `steps`, in order.
    pub async fn deploy_chain(
        &self,
        endpoint: &Name,
        steps: &[Name],
        run_id: i64,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        if steps.iter().any(|s| s == endpoint) {
            return Err(Error::Invalid(format!("the inference pipeline {endpoint} cannot be one of its own steps")));
        }
        if let Some(missing) = steps.iter().find(|s| self.inner.router.get(s).is_none()) {
            return Err(Error::Invalid(format!(
                "inference pipeline step {missing} is not a served endpoint; deploy it in an earlier stage"
            )));
        }
        let record = EndpointRecord {
            chain: Some(serde_json::to_string(steps).unwrap_or_default()),
            ..endpoint_record(endpoint, CHAIN_GROUP, run_id, ttl)
        };
        self.install_recorded(endpoint, record, chain_variant(steps)).await
    }

    /// Records an endpoint that serves no registered version (multi-model, chain) and serves `variant` on it.
    async fn install_recorded(
        &self,
        endpoint: &Name,
        record: EndpointRecord,
        variant: Arc<Variant>,
    ) -> Result<(), Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        self.store().set_endpoint(&record).await?;
        self.store().set_endpoint_variants(endpoint, &[]).await?;
        if let Some(old) = self.inner.router.install(Endpoint::single(endpoint.clone(), variant)) {
            router::drain(old, DRAIN_DEADLINE).await;
        }
        Ok(())
    }

    /// Starts a variant's instances for `version` and waits until each answers `/ping`.
    async fn start_variant(
        &self,
        endpoint: &Name,
        version: &ModelVersionRecord,
        hosting: &Hosting,
    ) -> Result<Arc<Variant>, Error> {
        let limits = docker::limits(hosting.instance_type.as_deref())?;
        let count = if version.algorithm.starts_with("builtin:") { 1 } else { hosting.instances.max(1) };
        let starts = (0..count).map(|_| self.start_instance(endpoint, version, hosting.startup_timeout, limits));
        // If one fails, the others are dropped here, which stops them.
        let instances = futures::future::try_join_all(starts).await?;
        let model = format!("{} v{}", version.model_group, version.version);
        Ok(Arc::new(Variant::new(hosting.variant.clone(), model, instances.into_iter().map(Arc::new).collect())))
    }

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

    async fn restore_endpoint(&self, name: &Name, record: &EndpointRecord) -> Result<(), Error> {
        if let Some(chain) = &record.chain {
            let steps: Vec<Name> = serde_json::from_str(chain)
                .map_err(|e| Error::Invalid(format!("the recorded steps of inference pipeline {name}: {e}")))?;
            self.inner.router.install(Endpoint::single(name.clone(), chain_variant(&steps)));
            return Ok(());
        }
        if let Some(dir) = &record.multi_model_dir {
            let budget = u64::try_from(record.memory_budget_bytes.unwrap_or(0)).unwrap_or(0);
            let image = record.multi_model_image.as_deref();
            let variant =
                self.multi_model_variant(name, Path::new(dir), image, budget, DEFAULT_STARTUP_TIMEOUT).await?;
            self.inner.router.install(Endpoint::single(name.clone(), variant));
            return Ok(());
        }
        let layout = self.layout(name).await?;
        let mut variants = Vec::new();
        for v in &layout {
            let version = self.store().model_version(&v.model_group, v.model_version).await?;
            variants.push((self.start_variant(name, &version, &hosting_of(v)?).await?, v.weight));
        }
        if let Some(old) = self.inner.router.install(Endpoint { name: name.clone(), variants }) {
            router::drain(old, DRAIN_DEADLINE).await;
        }
        Ok(())
    }

    /// Leaves `variant` alone on the endpoint with all of its traffic; the other variants drain and stop.
    pub async fn keep_only_variant(&self, endpoint: &Name, variant: &Name) -> Result<(), Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let current = self
            .inner
            .router
            .get(endpoint)
            .ok_or_else(|| Error::Invalid(format!("endpoint {endpoint} is not served")))?;
        let kept = current.variants.iter().find(|(v, _)| v.name == *variant).map(|(v, _)| v.clone());
        let kept = kept.ok_or_else(|| Error::Invalid(format!("endpoint {endpoint} has no variant {variant}")))?;
        let mut layout = self.layout(endpoint).await?;
        layout.retain(|v| v.variant == *variant);
        if let Some(record) = layout.first_mut() {
            record.weight = 1.0;
            let mut recorded = self
                .store()
                .endpoint(endpoint)
                .await?
                .ok_or_else(|| Error::Invalid(format!("endpoint {endpoint} is not recorded")))?;
            recorded.model_group = record.model_group.clone();
            recorded.model_version = record.model_version;
            self.store().set_endpoint(&recorded).await?;
        }
        self.store().set_endpoint_variants(endpoint, &layout).await?;
        let replaced = self.inner.router.install(Endpoint::single(endpoint.clone(), kept));
        drop(current);
        if let Some(old) = replaced {
            router::drain(old, DRAIN_DEADLINE).await;
        }
        Ok(())
    }

    /// Captures `percent` of the endpoint's requests and answers (or none) from now on, and after restarts.
    pub async fn set_capture(&self, endpoint: &Name, percent: Option<f64>) -> Result<(), Error> {
        self.store().set_endpoint_capture(endpoint, percent).await?;
        self.apply_capture(endpoint, percent);
        Ok(())
    }

    fn apply_capture(&self, endpoint: &Name, percent: Option<f64>) {
        let capture = percent.filter(|p| *p > 0.0).map(|percent| {
            router::Capture::start(router::CaptureConfig {
                dir: self.home().capture_dir(endpoint),
                share: percent / 100.0,
                max_file_bytes: CAPTURE_FILE_BYTES,
                keep_files: CAPTURE_FILES,
            })
        });
        self.inner.router.set_capture(endpoint, capture);
    }

    /// Stops serving an endpoint (its in-flight requests finish first) and forgets it; whether it existed.
    pub async fn delete_endpoint(&self, endpoint: &Name) -> Result<bool, Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let existed = self.store().delete_endpoint(endpoint).await?;
        if let Some(old) = self.inner.router.remove(endpoint) {
            router::drain(old, DRAIN_DEADLINE).await;
        }
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
                Ok(_) => tracing::warn!("endpoint {name}: its TTL passed; deleted"),
                Err(e) => tracing::error!("endpoint {name}: deleting it after its TTL: {e}"),
            }
        }
        expired
    }

    /// The recorded variants of an endpoint; one `AllTraffic` variant for an endpoint recorded before variants were.
    async fn layout(&self, endpoint: &str) -> Result<Vec<VariantRecord>, Error> {
        let layout = self.store().endpoint_variants(endpoint).await?;
        if !layout.is_empty() {
            return Ok(layout);
        }
        let Some(record) = self.store().endpoint(endpoint).await? else { return Ok(Vec::new()) };
        Ok(vec![VariantRecord {
            variant: Name::all_traffic().to_string(),
            model_group: record.model_group,
            model_version: record.model_version,
            weight: 1.0,
            instances: record.instances,
            instance_type: record.instance_type,
        }])
    }

    /// Each `interval`, forever: deletes endpoints past their TTL, pings every instance behind the router,
    /// and replaces one that fails [`FAILED_PINGS_BEFORE_REPLACING`] times in a row with a fresh instance of the same model.
    pub async fn watch_health(self, interval: Duration) {
        let client = match reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build() {
            Ok(client) => client,
            Err(e) => return tracing::error!("health checks are off: {e}"),
        };
        let mut failures: HashMap<String, u32> = HashMap::new();
        loop {
            tokio::time::sleep(interval).await;
            self.delete_expired_endpoints().await;
            let mut checks = Vec::new();
            for name in self.inner.router.names() {
                let Some(endpoint) = self.inner.router.get(&name) else { continue };
                for instance in endpoint.instances() {
                    if let Instance::Http { upstream, .. } | Instance::MultiModelServer { upstream, .. } =
                        instance.as_ref()
                    {
                        let base_url = &upstream.base_url;
                        let ping = client.get(format!("{base_url}/ping")).send();
                        let (name, instance, base_url) = (name.clone(), instance.clone(), base_url.clone());
                        checks.push(async move {
                            let healthy = matches!(ping.await, Ok(r) if r.status().is_success());
                            (name, instance, base_url, healthy)
                        });
                    }
                }
            }
            let mut dead = Vec::new();
            for (name, instance, base_url, healthy) in futures::future::join_all(checks).await {
                if healthy {
                    failures.remove(&base_url);
                    continue;
                }
                let count = failures.entry(base_url.clone()).or_default();
                *count += 1;
                if *count >= FAILED_PINGS_BEFORE_REPLACING {
                    failures.remove(&base_url);
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
    async fn replace_instance(&self, endpoint: &Name, dead: Arc<Instance>) -> Result<Option<String>, Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let Some(current) = self.inner.router.get(endpoint) else { return Ok(None) };
        if !current.instances().any(|i| Arc::ptr_eq(i, &dead)) {
            return Ok(None);
        }
        if matches!(dead.as_ref(), Instance::MultiModelServer { .. }) {
            // Its loaded models went with it: a fresh container starts empty and loads on demand.
            let Some(record) = self.store().endpoint(endpoint).await? else { return Ok(None) };
            let Some(dir) = record.multi_model_dir.as_deref() else { return Ok(None) };
            let budget = u64::try_from(record.memory_budget_bytes.unwrap_or(0)).unwrap_or(0);
            let image = record.multi_model_image.as_deref();
            let variant =
                self.multi_model_variant(endpoint, Path::new(dir), image, budget, DEFAULT_STARTUP_TIMEOUT).await?;
            let url = variant.instances.first().map_or_else(|| "in-process".to_owned(), |i| instance_url(i));
            let replaced = self.inner.router.install(Endpoint::single(endpoint.clone(), variant));
            drop((current, dead));
            if let Some(old) = replaced {
                router::drain(old, DRAIN_DEADLINE).await;
            }
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
        let limits = docker::limits(hosting.instance_type.as_deref())?;
        let fresh = Arc::new(self.start_instance(endpoint, &version, hosting.startup_timeout, limits).await?);
        let url = instance_url(&fresh);
        let replaced = self.inner.router.install(current.replacing(&dead, fresh));
        drop((current, dead));
        if let Some(old) = replaced {
            router::drain(old, DRAIN_DEADLINE).await;
        }
        Ok(Some(url))
    }

    /// `<router>/endpoints/<name>/invocations`.
    pub fn invocation_url(&self, endpoint: &str) -> String {
        format!("{}/endpoints/{endpoint}/invocations", self.router_url())
    }

    async fn start_instance(
        &self,
        endpoint: &Name,
        version: &ModelVersionRecord,
        startup_timeout: Duration,
        limits: docker::Limits,
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
            Some(Algorithm::Process(algorithm_dir)) => {
                let server = ProcessInstance::start(&algorithm_dir, &opt_ml, &log, startup_timeout).await?;
                Ok(Instance::Http { upstream: Upstream::new(server.base_url.clone()), owner: Box::new((server, dir)) })
            }
            Some(Algorithm::Image(image)) => {
                let labels = self.container_labels();
                let server =
                    ContainerInstance::start(&image, &opt_ml, &log, startup_timeout, &labels, limits, endpoint).await?;
                Ok(Instance::Http { upstream: container_upstream(&server), owner: Box::new((server, dir)) })
            }
            None => Err(Error::Invalid(format!(
                "model {} v{} has an unknown algorithm `{}`",
                version.model_group, version.version, version.algorithm
            ))),
        }
    }

    async fn endpoint_lock(&self, endpoint: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.deploy_locks.lock().await;
        locks.entry(endpoint.to_string()).or_default().clone()
    }
}

/// An instance's unpacked model folder, removed with the instance (after its server, which is dropped first).
struct ModelDir(PathBuf);

impl Drop for ModelDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hosting_of(record: &VariantRecord) -> Result<Hosting, Error> {
    Ok(Hosting {
        instances: u32::try_from(record.instances).unwrap_or(1).max(1),
        instance_type: record.instance_type.clone(),
        variant: Name::parse(&record.variant).map_err(|e| Error::Invalid(format!("recorded variant: {e}")))?,
        weight: Some(record.weight),
        ..Hosting::default()
    })
}

/// `previous`'s variants with their weights scaled to `1 - share`, and `fresh` with `share` of the traffic.
fn shifted(previous: &Endpoint, fresh: &Arc<Variant>, share: f64) -> Endpoint {
    let total: f64 = previous.variants.iter().map(|(_, w)| w.max(0.0)).sum::<f64>().max(f64::MIN_POSITIVE);
    let mut variants: Vec<(Arc<Variant>, f64)> =
        previous.variants.iter().map(|(v, w)| (v.clone(), w.max(0.0) * (1.0 - share))).collect();
    variants.push((fresh.clone(), total * share));
    Endpoint { name: previous.name.clone(), variants }
}

/// Watches `variant` for `policy.bake`; the alarm that fired, if one did.
async fn bake(variant: &Variant, policy: &DeployPolicy) -> Option<String> {
    let start = variant.stats.snapshot();
    let deadline = tokio::time::Instant::now() + policy.bake;
    loop {
        let window = variant.stats.snapshot().since(&start);
        if let Some(alarm) = alarm(policy, &window, &variant.model) {
            return Some(alarm);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
    }
}

fn alarm(policy: &DeployPolicy, window: &router::Snapshot, model: &str) -> Option<String> {
    if window.invocations == 0 {
        return None;
    }
    let n = window.invocations;
    if let Some(max) = policy.max_error_rate
        && window.error_rate() > max
    {
        return Some(format!(
            "{model} answered {} of {n} requests with an error, above max_error_rate {max}",
            window.errors_5xx
        ));
    }
    if let Some(max) = policy.max_p99_ms
        && let Some(p99) = window.latency_quantile_ms(0.99)
        && p99 > max
    {
        return Some(format!("{model}'s p99 latency over {n} requests is up to {p99} ms, above max_p99_ms {max}"));
    }
    None
}

/// The model group recorded for a multi-model endpoint, which serves no single registered version.
const MULTI_MODEL_GROUP: &str = "(multi-model)";
/// The model group recorded for a serial inference pipeline, whose steps are other endpoints.
const CHAIN_GROUP: &str = "(inference pipeline)";

fn chain_variant(steps: &[Name]) -> Arc<Variant> {
    let model = format!("pipeline {}", join(steps, " -> "));
    Arc::new(Variant::new(Name::all_traffic(), model, vec![Arc::new(Instance::Chain(steps.to_vec()))]))
}

/// An endpoint's record with one instance and nothing special set; callers fill in what they serve.
fn endpoint_record(endpoint: &Name, group: &str, run_id: i64, ttl: Option<Duration>) -> EndpointRecord {
    EndpointRecord {
        name: endpoint.to_string(),
        model_group: group.to_owned(),
        model_version: 0,
        run_id,
        instances: 1,
        instance_type: None,
        expires_at: expiry(ttl),
        multi_model_dir: None,
        memory_budget_bytes: None,
        multi_model_image: None,
        chain: None,
        capture_percent: None,
        updated_at: 0,
    }
}

fn expiry(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| store::now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2))
}

/// One variant answering from a cache of the built-in models in `dir`. A model counts against the
/// budget with the size of its `model.json`, a stable stand-in for what it takes in memory.
fn builtin_multi_model_variant(dir: &Path, budget_bytes: u64) -> Arc<Variant> {
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
fn read_model_archive(folder: &Path, name: &str) -> Result<Vec<u8>, LoadError> {
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

/// Where an instance is, for the log: its base URL, or `in-process`.
fn instance_url(instance: &Instance) -> String {
    match instance {
        Instance::Http { upstream, .. } | Instance::MultiModelServer { upstream, .. } => upstream.base_url.clone(),
        Instance::Builtin(_) | Instance::MultiModel(_) | Instance::Chain(_) => "in-process".to_owned(),
    }
}

/// How the router reaches a container: at its own network address when this machine can, each new
/// connection there first checked with the Engine, since Docker gives a stopped container's address
/// to the next container it starts.
fn container_upstream(server: &ContainerInstance) -> Upstream {
    let Some(address) = server.direct_address.clone() else { return Upstream::new(server.base_url.clone()) };
    let name = server.name().to_owned();
    let check: AddressCheck = Arc::new({
        let address = address.clone();
        move || {
            let (name, address) = (name.clone(), address.clone());
            Box::pin(async move { docker::holds_address(&name, &address).await })
        }
    });
    Upstream::direct(server.base_url.clone(), &address, check)
}

/// Names joined by `separator`, for messages.
pub(crate) fn join(names: &[Name], separator: &str) -> String {
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(name: &str) -> Arc<Variant> {
        Arc::new(Variant::new(Name::parse(name).unwrap(), format!("{name} v1"), Vec::new()))
    }

    fn policy(traffic: Traffic, bake_ms: u64) -> DeployPolicy {
        DeployPolicy {
            traffic,
            bake: Duration::from_millis(bake_ms),
            max_error_rate: Some(0.1),
            max_p99_ms: Some(50.0),
        }
    }

    #[test]
    fn each_step_gives_the_new_model_its_share_and_scales_the_rest() {
        let (a, b, fresh) = (variant("a"), variant("b"), variant("fresh"));
        let previous = Endpoint { name: Name::parse("prod").unwrap(), variants: vec![(a, 3.0), (b, 1.0)] };
        let shares: Vec<Vec<f64>> = Traffic::Linear { percent: 25.0 }
            .steps()
            .into_iter()
            .map(|share| shifted(&previous, &fresh, share).variants.iter().map(|(_, w)| *w).collect())
            .collect();
        // Weights keep their total (4) and the old variants their 3:1 ratio at every step.
        assert_eq!(shares, [vec![2.25, 0.75, 1.0], vec![1.5, 0.5, 2.0], vec![0.75, 0.25, 3.0], vec![0.0, 0.0, 4.0]]);
        assert_eq!(Traffic::Canary { percent: 10.0 }.steps(), [0.1, 1.0]);
        assert_eq!(Traffic::AllAtOnce.steps(), [1.0]);
    }

    #[test]
    fn an_alarm_fires_past_the_error_rate_or_the_p99_and_not_without_traffic() {
        let quiet = policy(Traffic::Canary { percent: 10.0 }, 0);
        let stats = router::Stats::default();
        assert_eq!(alarm(&quiet, &stats.snapshot(), "m"), None, "no requests, no verdict");
        for _ in 0..19 {
            stats.record(200, Duration::from_millis(1));
        }
        stats.record(500, Duration::from_millis(1));
        assert_eq!(alarm(&quiet, &stats.snapshot(), "m"), None, "1 in 20 is under 10%");
        stats.record(500, Duration::from_millis(1));
        stats.record(424, Duration::from_millis(1));
        let fired = alarm(&quiet, &stats.snapshot(), "m").unwrap();
        assert!(fired.contains("3 of 22") && fired.contains("max_error_rate 0.1"), "{fired}");
        let slow = router::Stats::default();
        for _ in 0..10 {
            slow.record(200, Duration::from_millis(400));
        }
        assert!(alarm(&quiet, &slow.snapshot(), "m").unwrap().contains("max_p99_ms 50"));
    }

    #[tokio::test]
    async fn a_bake_watches_only_what_came_after_it_started() {
        let fresh = variant("fresh");
        // Errors before the step began are not the new step's.
        for _ in 0..10 {
            fresh.stats.record(500, Duration::from_millis(1));
        }
        let step = policy(Traffic::Canary { percent: 10.0 }, 30);
        assert_eq!(bake(&fresh, &step).await, None);
        let watching = {
            let fresh = fresh.clone();
            tokio::spawn(async move { bake(&fresh, &policy(Traffic::Canary { percent: 10.0 }, 5_000)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        fresh.stats.record(500, Duration::from_millis(1));
        let fired = tokio::time::timeout(Duration::from_secs(2), watching).await.unwrap().unwrap();
        assert!(fired.unwrap().contains("1 of 1"), "an alarm ends the bake early");
    }
}
