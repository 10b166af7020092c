//! Deploying a model version to an endpoint: unpack, start its instances, wait healthy, record, swap, drain the old ones.
//!
//! New instances must be serving before they take traffic, and old ones are dropped
//! only after their in-flight requests end, so an update fails no request. A health
//! check replaces an instance that stops answering `/ping` the same way.

mod health;
mod instances;
mod lifecycle;
mod rollout;

pub use rollout::{Rollout, RolloutState};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use names::Name;
use pipeline::{DeployPolicy, Traffic};
use router::{Endpoint, Instance, Variant};
use store::{EndpointKind, EndpointRecord, ModelVersionRecord, VariantRecord};

use crate::{Engine, Error};

/// How long a new instance gets to answer `/ping`, unless the deploy stage sets `startup_timeout`.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A data capture file is closed past this size...
const CAPTURE_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// ...and only this many of the newest are kept.
const CAPTURE_FILES: usize = 10;
/// How long a replaced instance may keep finishing its requests.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// How an endpoint is hosted: SageMaker's endpoint config for one variant.
#[derive(Clone, Debug)]
pub struct Hosting {
    /// How long each new instance gets to answer `/ping`.
    pub startup_timeout: Duration,
    /// How many instances serve the endpoint. The built-in algorithm always has one: it
    /// answers in-process on every core.
    pub instances: u32,
    /// The instance type whose CPU and memory each container gets; `None` is [`runtime::instance::DEFAULT_INSTANCE_TYPE`].
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
                let mut shift = Rollout::start(endpoint, &model, policy);
                for (step, share) in policy.traffic.steps().into_iter().enumerate() {
                    // Each step keeps every variant of the one before: nothing to drain until the end.
                    self.inner.router.install(rollout::shifted(previous, &fresh, share));
                    events.push(format!("{:.0}% of traffic goes to {model}; baking {:?}", share * 100.0, policy.bake));
                    shift.at_step(step + 1, share);
                    self.set_rollout(&shift);
                    if let Some(alarm) = rollout::bake(&fresh, policy).await {
                        let restored = Endpoint { name: endpoint.clone(), variants: previous.variants.clone() };
                        events.push(format!("alarm: {alarm}; all traffic is back on what the endpoint served"));
                        drop(fresh);
                        self.swap(restored).await;
                        shift.end(RolloutState::RolledBack, Some(alarm.clone()));
                        self.set_rollout(&shift);
                        return Err(Error::RolledBack(alarm));
                    }
                }
                shift.end(RolloutState::Completed, None);
                self.set_rollout(&shift);
                layout.clear();
                Endpoint::single(endpoint.clone(), fresh)
            }
            _ => {
                layout.clear();
                Endpoint::single(endpoint.clone(), fresh)
            }
        };
        let kind = model_kind(&record);
        layout.push(record);
        // Recorded before the old model goes: after a crash the restart serves what was last deployed.
        self.store()
            .set_endpoint(&EndpointRecord {
                instances: i64::from(hosting.instances),
                instance_type: hosting.instance_type.clone(),
                ..endpoint_record(endpoint, kind, run_id, hosting.ttl)
            })
            .await?;
        self.store().set_endpoint_variants(endpoint, &layout).await?;
        drop(previous);
        self.swap(next).await;
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
        let kind = EndpointKind::MultiModel {
            dir: dir.display().to_string(),
            memory_budget_bytes: budget_bytes,
            image: image.map(str::to_owned),
        };
        let record = endpoint_record(endpoint, kind, run_id, ttl);
        let variant = self.multi_model_variant(endpoint, dir, image, budget_bytes, startup_timeout).await?;
        self.install_recorded(endpoint, record, variant).await
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
        let kind = EndpointKind::Chain { steps: steps.iter().map(Name::to_string).collect() };
        let record = endpoint_record(endpoint, kind, run_id, ttl);
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
        self.swap(Endpoint::single(endpoint.clone(), variant)).await;
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
            recorded.kind = model_kind(record);
            self.store().set_endpoint(&recorded).await?;
        }
        self.store().set_endpoint_variants(endpoint, &layout).await?;
        drop(current);
        self.swap(Endpoint::single(endpoint.clone(), kept)).await;
        Ok(())
    }

    /// Gives the named variants of a served model endpoint these weights (SageMaker's
    /// UpdateEndpointWeightsAndCapacities); the other variants keep theirs. Nothing restarts:
    /// the same instances take their new share of the traffic from the next request.
    pub async fn set_weights(&self, endpoint: &Name, weights: &BTreeMap<Name, f64>) -> Result<(), Error> {
        let lock = self.endpoint_lock(endpoint).await;
        let _held = lock.lock().await;
        let current =
            self.inner.router.get(endpoint).ok_or_else(|| {
                Error::Invalid(format!("endpoint {endpoint} is not served; start `sagebrush server`"))
            })?;
        let mut layout = self.layout(endpoint).await?;
        if layout.is_empty() {
            return Err(Error::Invalid(format!(
                "endpoint {endpoint} serves no model variants, so it has no weights to set"
            )));
        }
        if let Some(unknown) = weights.keys().find(|name| !layout.iter().any(|v| v.variant == name.as_str())) {
            let known: Vec<&str> = layout.iter().map(|v| v.variant.as_str()).collect();
            return Err(Error::Invalid(format!(
                "endpoint {endpoint} has no variant {unknown}; its variants are {}",
                known.join(", ")
            )));
        }
        for record in &mut layout {
            if let Some(weight) = Name::parse(&record.variant).ok().and_then(|name| weights.get(&name)) {
                record.weight = *weight;
            }
        }
        if layout.iter().map(|v| v.weight).sum::<f64>() <= 0.0 {
            return Err(Error::Invalid("at least one variant must keep a weight above 0".to_owned()));
        }
        let variants =
            current.variants.iter().map(|(v, w)| (v.clone(), weights.get(&v.name).copied().unwrap_or(*w))).collect();
        self.store().set_endpoint_variants(endpoint, &layout).await?;
        drop(current);
        self.swap(Endpoint { name: endpoint.clone(), variants }).await;
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

    /// The recorded variants of an endpoint; one `AllTraffic` variant for an endpoint recorded before variants were.
    async fn layout(&self, endpoint: &str) -> Result<Vec<VariantRecord>, Error> {
        let layout = self.store().endpoint_variants(endpoint).await?;
        if !layout.is_empty() {
            return Ok(layout);
        }
        let Some(record) = self.store().endpoint(endpoint).await? else { return Ok(Vec::new()) };
        let EndpointKind::Model { model_group, model_version } = record.kind else { return Ok(Vec::new()) };
        Ok(vec![VariantRecord {
            variant: Name::all_traffic().to_string(),
            model_group,
            model_version,
            weight: 1.0,
            instances: record.instances,
            instance_type: record.instance_type,
        }])
    }

    /// `<router>/endpoints/<name>/invocations`.
    /// The endpoint's traffic shift in progress, or the last one this process ran.
    pub fn rollout(&self, endpoint: &str) -> Option<Rollout> {
        self.inner.rollouts.lock().unwrap_or_else(|e| e.into_inner()).get(endpoint).cloned()
    }

    fn set_rollout(&self, rollout: &Rollout) {
        let mut rollouts = self.inner.rollouts.lock().unwrap_or_else(|e| e.into_inner());
        rollouts.insert(rollout.endpoint.clone(), rollout.clone());
    }

    pub fn invocation_url(&self, endpoint: &str) -> String {
        format!("{}/endpoints/{endpoint}/invocations", self.router_url())
    }

    /// Serves `next` from now on; what it replaces finishes its in-flight requests first, so a
    /// swap fails no request. The one place an endpoint is replaced: callers drop their own
    /// references to the old one before, or its drain waits for them.
    async fn swap(&self, next: Endpoint) {
        self.retire(self.inner.router.install(next)).await;
    }

    /// Waits until a replaced or removed endpoint has answered what it was answering (at most [`DRAIN_DEADLINE`]).
    async fn retire(&self, old: Option<Arc<Endpoint>>) {
        if let Some(old) = old {
            router::drain(old, DRAIN_DEADLINE).await;
        }
    }

    async fn endpoint_lock(&self, endpoint: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.deploy_locks.lock().await;
        locks.entry(endpoint.to_string()).or_default().clone()
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

fn chain_variant(steps: &[Name]) -> Arc<Variant> {
    let model = format!("pipeline {}", join(steps, " -> "));
    Arc::new(Variant::new(Name::all_traffic(), model, vec![Arc::new(Instance::Chain(steps.to_vec()))]))
}

/// What a model endpoint whose last deployed variant is `variant` serves.
fn model_kind(variant: &VariantRecord) -> EndpointKind {
    EndpointKind::Model { model_group: variant.model_group.clone(), model_version: variant.model_version }
}

/// An endpoint's record with one instance.
fn endpoint_record(endpoint: &Name, kind: EndpointKind, run_id: i64, ttl: Option<Duration>) -> EndpointRecord {
    EndpointRecord {
        name: endpoint.to_string(),
        kind,
        run_id,
        instances: 1,
        instance_type: None,
        expires_at: expiry(ttl),
        capture_percent: None,
        updated_at: 0,
    }
}

fn expiry(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| store::now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2))
}

/// Names joined by `separator`, for messages.
pub(crate) fn join(names: &[Name], separator: &str) -> String {
    names.iter().map(Name::as_str).collect::<Vec<_>>().join(separator)
}
