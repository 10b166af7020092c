//! The service layer: every operation a user can do, once. The HTTP API is a thin layer over it,
//! and the CLI calls it in-process when no server runs, so both answer alike.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use engine::Engine;
use names::Name;
use serde::{Deserialize, Serialize};
use store::{
    AuditRecord, EndpointRecord, EventRecord, ModelVersionRecord, ProjectRecord, Role, RunRecord, RunStatus,
    StageRecord, TokenRecord,
};
use utoipa::ToSchema;

use crate::ServiceError;
use crate::auth::{self, Access, Caller, Tokens};

mod buckets;
mod hosting;
mod packages;
mod tags;
mod training_jobs;

pub use buckets::{BucketError, Buckets, ListQuery, Scratch};
pub use hosting::{EndpointConfigResource, EndpointResource, EndpointStatus, ModelResource, ModelSpec, VariantSpec};
pub use packages::PackageGroup;
pub use tags::{Tags, checked as checked_tags};
pub use training_jobs::{TrainingJobSpec, TrainingJobView};

type Result<T> = std::result::Result<T, ServiceError>;

/// A run with its stages.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    pub stages: Vec<StageRecord>,
    /// Its approval stages: what each asks to let through, with the evidence, and who decided.
    pub approvals: Vec<store::ApprovalRecord>,
}

/// A decision on a waiting run's approval.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    /// Why: recorded with who decided and when.
    pub reason: String,
}

/// A run just submitted.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    pub run: RunRecord,
    /// Its stages' names, in order.
    pub stages: Vec<String>,
    /// True when the same commit with the same parameters was queued already: `run` is that one.
    pub duplicate: bool,
}

/// A page of runs, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RunsPage {
    pub runs: Vec<RunRecord>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<i64>,
}

/// Which runs to list.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Only this project's runs.
    pub project: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs started this way.
    pub trigger: Option<store::TriggerKind>,
    /// At most this many (1 to 1000, default 50).
    pub limit: Option<i64>,
    /// From the `next_cursor` of the page before.
    pub cursor: Option<i64>,
}

/// An endpoint: its record, and, when this server serves it, its URL and its variants with their counters.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    #[serde(flatten)]
    pub record: EndpointRecord,
    pub url: Option<String>,
    pub variants: Vec<router::VariantView>,
}

/// A deploy of a registered version to an endpoint, with a traffic policy.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct DeployRequest {
    pub model_group: String,
    /// The version; the newest when absent.
    pub model_version: Option<i64>,
    /// `all-at-once` (default), `canary` or `linear`.
    pub traffic: Option<String>,
    /// The canary's share, or each linear step, in percent.
    pub traffic_percent: Option<f64>,
    /// Seconds each step is watched.
    #[serde(default)]
    pub bake_seconds: f64,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    /// The variant the model goes into; with `weight`, the endpoint's other variants stay.
    pub variant: Option<String>,
    pub weight: Option<f64>,
    /// 1 to 16 (default 1).
    pub instances: Option<u32>,
    pub instance_type: Option<String>,
}

/// New traffic weights for some of an endpoint's variants.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct WeightsRequest {
    /// Variant name to its weight, relative to the others' (0 or more); variants not named keep theirs.
    pub weights: BTreeMap<String, f64>,
}

/// What a deploy did, step by step.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Deployed {
    pub events: Vec<String>,
    pub model: String,
    pub url: String,
}

/// Where the local image registry listens.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    /// `host:port` on loopback: push `<address>/<repository>:<tag>`, and name the image
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>` in SageMaker's requests.
    pub address: String,
}

/// The branch a git project builds unless told otherwise.
pub const DEFAULT_BRANCH: &str = "main";

/// What a project is added from: a folder on the server's machine, or a git repository's branch.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AddProject {
    /// The project folder (holding sagebrush.toml) on the server's machine.
    pub path: Option<String>,
    /// A git repository the server can clone (`https://...`, `ssh://...`, `file://...`, a path).
    pub repo: Option<String>,
    /// The branch whose commits the project's runs build (default `main`).
    pub branch: Option<String>,
}

/// A token just made: the only time its value is shown.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    /// Pass it as `Authorization: Bearer <token>` or `SAGEBRUSH_TOKEN`; it cannot be shown again.
    pub token: String,
}

/// A page of the audit, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<i64>,
}

/// Which entries of the audit to list.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At most this many (1 to 1000, default 50).
    pub limit: Option<i64>,
    /// From the `next_cursor` of the page before.
    pub cursor: Option<i64>,
    /// Only this caller's entries (a token's name, or `local`).
    pub actor: Option<String>,
    /// Only actions containing this text, e.g. `approve` or `/api/v1/runs`.
    pub action: Option<String>,
}

/// Events in order, after a given one.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventRecord>,
    /// Pass as `after` to go on from here (the last event's id, or `after` itself with none).
    pub last: i64,
}

/// The service over one engine.
#[derive(Clone)]
pub struct Service {
    engine: Engine,
    access: Access,
    deploys: hosting::Deploys,
}

/// A page's size: 1 to 1000, 50 unless given.
fn page_limit(limit: Option<i64>) -> Result<i64> {
    let limit = limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", "limit is 1 to 1000"));
    }
    Ok(limit)
}

/// A name from a URL or a body.
pub(crate) fn name(what: &str, text: &str) -> Result<Name> {
    Name::parse(text).map_err(|e| ServiceError::invalid_name(what, &e))
}

impl Service {
    /// The service for the CLI in-process: every caller is `local`.
    pub fn new(engine: Engine) -> Service {
        Service { engine, access: Access::default(), deploys: Default::default() }
    }

    /// The service for a server: callers are told by their tokens, which are read now.
    pub async fn for_server(engine: Engine, required: bool, public_endpoints: Vec<String>) -> Result<Service> {
        let access = Access { required, tokens: Tokens::default(), public_endpoints: Arc::new(public_endpoints) };
        let service = Service { engine, access, deploys: Default::default() };
        service.reload_tokens().await?;
        service.end_interrupted_endpoint_changes().await?;
        if let Some(buckets) = service.buckets() {
            // What a stopped server was receiving for S3 (best effort: it only takes disk).
            let _ = tokio::task::spawn_blocking(move || buckets.sweep()).await;
        }
        Ok(service)
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    async fn reload_tokens(&self) -> Result<()> {
        self.access.tokens.set(self.engine.store().token_hashes().await?);
        Ok(())
    }

    /// Makes a token; its value is in the answer and nowhere else.
    pub async fn create_token(&self, name: &Name, role: Role) -> Result<CreatedToken> {
        let token = auth::new_token()?;
        self.engine.store().create_token(name, role, &hex::encode(auth::hash(&token))).await?;
        self.reload_tokens().await?;
        Ok(CreatedToken { name: name.to_string(), role, token })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Ok(self.engine.store().token_hashes().await?.into_iter().map(|(record, _)| record).collect())
    }

    /// Revokes a token: refused from the next request on.
    pub async fn revoke_token(&self, name: &Name) -> Result<()> {
        self.engine.store().revoke_token(name).await?;
        self.reload_tokens().await
    }

    /// Records a call that changed something (or tried to).
    pub async fn record(&self, caller: &Caller, action: &str, status: StatusCode) {
        if let Err(e) = self.engine.store().record_audit(&caller.name, action, status.as_u16()).await {
            tracing::warn!("recording `{action}` by {} in the audit: {e}", caller.name);
        }
    }

    /// Events after `after` (all when 0), of one project when given, oldest first.
    pub async fn events(&self, after: i64, project: Option<&Name>, limit: Option<i64>) -> Result<EventsPage> {
        let limit = page_limit(limit.or(Some(1000)))?;
        let events = self.engine.store().events(after, project.map(Name::as_str), limit).await?;
        let last = events.last().map_or(after, |e| e.id);
        Ok(EventsPage { events, last })
    }

    /// The id of the newest event, to follow only what comes next.
    pub async fn last_event(&self) -> Result<i64> {
        Ok(self.engine.store().last_event().await?)
    }

    /// Events after `after`, waiting up to `patience` for the first; an empty page when none came.
    pub async fn wait_for_events(&self, after: i64, project: Option<&Name>, patience: Duration) -> Result<EventsPage> {
        let appended = self.engine.store().appended_notify();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before reading, so an event appended in between is not missed.
            let notified = appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let page = self.events(after, project, None).await?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !page.events.is_empty() || left.is_zero() {
                return Ok(page);
            }
            // Another process's events are not announced: read again at least each second.
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), notified).await;
        }
    }

    /// A page of the audit, newest first: of one caller (`actor`), and of actions containing `action`, when given.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        let limit = page_limit(query.limit)?;
        let filter = store::AuditFilter {
            before_id: query.cursor,
            actor: query.actor.as_deref().filter(|a| !a.is_empty()),
            action: query.action.as_deref().filter(|a| !a.is_empty()),
        };
        let mut entries = self.engine.store().audit(&filter, limit + 1).await?;
        let next_cursor = (entries.len() as i64 > limit).then(|| {
            entries.truncate(usize::try_from(limit).unwrap_or(50));
            entries.last().map_or(0, |e| e.id)
        });
        Ok(AuditPage { entries, next_cursor })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Lets the server run the project in a folder from now on.
    pub async fn add_project(&self, request: &AddProject) -> Result<ProjectRecord> {
        match (&request.path, &request.repo) {
            (Some(path), None) if request.branch.is_none() => Ok(self.engine.add_project(Path::new(path)).await?),
            (None, Some(repo)) => {
                let branch = request.branch.as_deref().unwrap_or(DEFAULT_BRANCH);
                Ok(self.engine.add_git_project(repo, branch).await?)
            }
            _ => Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a project is added from a `path`, or from a `repo` (with an optional `branch`)",
            )
            .hint("send {\"path\": \"/srv/iris\"} or {\"repo\": \"https://git.example.com/iris.git\", \"branch\": \"main\"}")),
        }
    }

    pub async fn projects(&self) -> Result<Vec<ProjectRecord>> {
        Ok(self.engine.store().projects().await?)
    }

    pub async fn remove_project(&self, project: &Name) -> Result<()> {
        if self.engine.store().remove_project(project).await? {
            Ok(())
        } else {
            Err(engine::Error::UnknownProject(project.clone()).into())
        }
    }

    /// Starts (queues, on a server) a run of a project the server was given.
    /// Queues a run for `caller`, a person.
    pub async fn submit(&self, project: &Name, parameters: &[(String, String)], caller: &Caller) -> Result<Submitted> {
        let trigger = store::Trigger::manual(&caller.name);
        let submitted = self.engine.submit_project(project, parameters, &trigger).await?;
        Ok(submitted_view(submitted))
    }

    pub async fn retry(
        &self,
        project: &Name,
        number: Option<i64>,
        from: Option<&Name>,
        caller: &Caller,
    ) -> Result<Submitted> {
        let run = self.engine.store().run(project, number).await?;
        Ok(submitted_view(self.engine.retry(project, run.number, from, &caller.name).await?))
    }

    pub async fn runs(&self, filter: &RunFilter) -> Result<RunsPage> {
        let project = filter.project.as_deref().map(|p| name("project", p)).transpose()?;
        let limit = page_limit(filter.limit)?;
        let page = store::RunQuery {
            project: project.as_deref(),
            status: filter.status,
            trigger: filter.trigger,
            before_id: filter.cursor,
            limit: limit + 1,
        };
        let mut runs = self.engine.store().runs_page(&page).await?;
        let next_cursor = (runs.len() as i64 > limit).then(|| {
            runs.truncate(usize::try_from(limit).unwrap_or(50));
            runs.last().map_or(0, |r| r.id)
        });
        Ok(RunsPage { runs, next_cursor })
    }

    /// A page of a project's runs with their stages (the stage view), newest first.
    pub async fn stage_view(&self, filter: &RunFilter) -> Result<(Vec<(RunRecord, Vec<StageRecord>)>, Option<i64>)> {
        let page = self.runs(filter).await?;
        Ok((self.engine.runs_view(page.runs).await?, page.next_cursor))
    }

    /// The parameters a run of the project started now would take, as its pipeline file declares them.
    pub async fn parameters(&self, project: &Name) -> Result<Vec<pipeline::Parameter>> {
        Ok(self.engine.project_pipeline(project).await?.parameters)
    }

    /// The training jobs a run started, with SageMaker's status, secondary status and failure reason.
    pub async fn training_jobs(&self, run: &RunRecord) -> Result<Vec<store::TrainingJobRecord>> {
        Ok(self.engine.store().training_jobs_of(run.id).await?)
    }

    /// The endpoint's traffic shift in progress, or the last one this server ran.
    pub fn rollout_of(&self, endpoint: &str) -> Option<engine::Rollout> {
        self.engine.rollout(endpoint)
    }

    /// A run by number, or the latest run of the project.
    pub async fn run(&self, project: &Name, number: Option<i64>) -> Result<RunDetail> {
        let run = self.engine.store().run(project, number).await?;
        let (run, stages) = self.engine.run_view(run.id).await?;
        let approvals = self.engine.store().approvals(run.id).await?;
        Ok(RunDetail { run, stages, approvals })
    }

    /// Approves (or rejects) a run waiting at its approval stage, as `caller`, with a reason.
    pub async fn decide(
        &self,
        project: &Name,
        number: Option<i64>,
        approve: bool,
        decision: &Decision,
        caller: &Caller,
    ) -> Result<RunDetail> {
        let reason = decision.reason.trim();
        if reason.is_empty() {
            return Err(ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", "a decision needs a reason")
                .hint("e.g. --reason \"accuracy 0.97 on the smoke test; image scanned clean\""));
        }
        let run = self.engine.store().run(project, number).await?;
        if run.status != RunStatus::Waiting {
            return Err(ServiceError::new(
                StatusCode::CONFLICT,
                "not_waiting",
                format!("run {} #{} is not waiting for an approval; it is {}", run.project, run.number, run.status),
            ));
        }
        self.engine.decide(run.id, approve, &caller.name, names::excerpt(reason, 2000).as_ref()).await?;
        self.run(project, Some(run.number)).await
    }

    /// Stops a running run, or takes a queued one out of the queue.
    pub async fn cancel(&self, project: &Name, number: Option<i64>) -> Result<RunDetail> {
        let run = self.engine.store().run(project, number).await?;
        if !self.engine.cancel(run.id).await? {
            return Err(ServiceError::new(
                StatusCode::CONFLICT,
                "run_ended",
                format!("run {} #{} already ended ({})", run.project, run.number, run.status),
            ));
        }
        self.run(project, Some(run.number)).await
    }

    /// The text of a run's stage logs from byte `offset` of each: `(stage, text)` in stage order.
    /// What each selected stage's log gained past `offsets` (bytes already seen, per stage in
    /// order, grown as needed and moved on), and the run's status read before them (a run that
    /// had ended then has written all of its logs).
    pub async fn log_since(
        &self,
        project: &Name,
        number: i64,
        stage: Option<&Name>,
        offsets: &mut Vec<u64>,
    ) -> Result<(Vec<(Name, String)>, RunStatus)> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let detail = self.run(project, Some(number)).await?;
        let stages = self.log_stages(&detail, stage)?;
        offsets.resize(stages.len(), 0);
        let mut chunks = Vec::new();
        for ((name, path), offset) in stages.into_iter().zip(offsets.iter_mut()) {
            let Ok(mut file) = tokio::fs::File::open(&path).await else { continue };
            let mut bytes = Vec::new();
            if file.seek(std::io::SeekFrom::Start(*offset)).await.is_ok() && file.read_to_end(&mut bytes).await.is_ok()
            {
                *offset += bytes.len() as u64;
                if !bytes.is_empty() {
                    chunks.push((name, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
        }
        Ok((chunks, detail.run.status))
    }

    /// The selected stages of a run and their log files, in order; an unknown `stage` is a 400.
    pub(crate) fn log_stages(
        &self,
        detail: &RunDetail,
        stage: Option<&Name>,
    ) -> Result<Vec<(Name, std::path::PathBuf)>> {
        let (project, number) = (&detail.run.project, detail.run.number);
        if let Some(wanted) = stage
            && !detail.stages.iter().any(|s| *wanted == s.name)
        {
            let names: Vec<&str> = detail.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                "unknown_stage",
                format!("run {project} #{number} has no stage `{wanted}`; its stages are {}", names.join(", ")),
            ));
        }
        let project = name("project", project)?;
        Ok(detail
            .stages
            .iter()
            // A stage name recorded before names were checked never becomes a path.
            .filter_map(|record| Name::parse(&record.name).ok())
            .filter(|name| stage.is_none_or(|wanted| wanted == name))
            .map(|name| {
                let path = self.engine.home().stage_log(&project, number, &name);
                (name, path)
            })
            .collect())
    }

    pub async fn logs(&self, project: &Name, number: Option<i64>, stage: Option<&Name>) -> Result<Vec<(Name, String)>> {
        let detail = self.run(project, number).await?;
        let mut logs = Vec::new();
        for (name, path) in self.log_stages(&detail, stage)? {
            let text =
                tokio::fs::read(&path).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            logs.push((name, text));
        }
        Ok(logs)
    }

    pub async fn models(&self, group: Option<&Name>) -> Result<Vec<ModelVersionRecord>> {
        Ok(self.engine.store().model_versions(group.map(|g| g.as_str())).await?)
    }

    pub async fn endpoints(&self) -> Result<Vec<EndpointView>> {
        let records = self.engine.store().endpoints().await?;
        Ok(records.into_iter().map(|record| self.endpoint_view(record)).collect())
    }

    pub async fn endpoint(&self, endpoint: &Name) -> Result<EndpointView> {
        match self.engine.store().endpoint(endpoint).await? {
            Some(record) => Ok(self.endpoint_view(record)),
            None => Err(no_endpoint(endpoint)),
        }
    }

    fn endpoint_view(&self, record: EndpointRecord) -> EndpointView {
        let served = self.engine.router().get(&record.name).is_some();
        EndpointView {
            url: served.then(|| self.engine.invocation_url(&record.name)),
            variants: self.engine.router().variants(&record.name),
            record,
        }
    }

    /// Deletes an endpoint, with what SageMaker's API kept of it.
    pub async fn delete_endpoint(&self, endpoint: &Name) -> Result<()> {
        // A CreateEndpoint or UpdateEndpoint still deploying it stops first, so nothing it would
        // have started outlives the delete.
        self.deploys.stop(endpoint).await;
        let forgotten = self.forget_endpoint_resource(endpoint).await?;
        if self.engine.delete_endpoint(endpoint).await? || forgotten { Ok(()) } else { Err(no_endpoint(endpoint)) }
    }

    /// Deploys a registered version to an endpoint of this server, shifting traffic as asked.
    pub async fn deploy(&self, endpoint: &Name, request: &DeployRequest) -> Result<Deployed> {
        let group = name("model_group", &request.model_group)?;
        let variant = request.variant.as_deref().map(|v| name("variant", v)).transpose()?;
        let bad = |message: &str| ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        let percent = request.traffic_percent;
        let traffic = match (request.traffic.as_deref().unwrap_or("all-at-once"), percent) {
            ("all-at-once", _) => pipeline::Traffic::AllAtOnce,
            ("canary", p) => pipeline::Traffic::Canary { percent: p.unwrap_or(10.0) },
            ("linear", p) => pipeline::Traffic::Linear { percent: p.unwrap_or(20.0) },
            _ => return Err(bad("traffic is all-at-once, canary or linear")),
        };
        let valid = percent.is_none_or(|p| p > 0.0 && p < 100.0)
            && (0.0..=86_400.0).contains(&request.bake_seconds)
            && request.max_error_rate.is_none_or(|r| (0.0..=1.0).contains(&r))
            && request.max_p99_ms.is_none_or(|p| p > 0.0 && p.is_finite())
            && request.weight.is_none_or(|w| w >= 0.0 && w.is_finite());
        if !valid {
            return Err(bad("traffic_percent is between 0 and 100, bake_seconds 0 to 86400, max_error_rate 0 to 1, \
                 max_p99_ms and weight positive numbers"));
        }
        let instances = request.instances.unwrap_or(1);
        if !(1..=16).contains(&instances) {
            return Err(bad("instances is 1 to 16"));
        }
        runtime::instance::limits(request.instance_type.as_deref()).map_err(engine::Error::from)?;
        let version = match request.model_version {
            Some(version) => self.engine.store().model_version(&group, version).await?,
            None => self
                .engine
                .store()
                .model_versions(Some(&group))
                .await?
                .into_iter()
                .max_by_key(|v| v.version)
                .ok_or_else(|| store::Error::NotFound(format!("a registered version of {group}")))?,
        };
        let policy = pipeline::DeployPolicy {
            traffic,
            bake: Duration::from_secs_f64(request.bake_seconds),
            max_error_rate: request.max_error_rate,
            max_p99_ms: request.max_p99_ms,
        };
        let hosting = engine::Hosting {
            instances,
            instance_type: request.instance_type.clone(),
            variant: variant.unwrap_or_else(Name::all_traffic),
            weight: request.weight,
            ..engine::Hosting::default()
        };
        let mut events = Vec::new();
        let model = format!("{} v{}", version.model_group, version.version);
        match self.engine.deploy(endpoint, &version, version.run_id, &hosting, &policy, &mut events).await {
            Ok(()) => Ok(Deployed { events, model, url: self.engine.invocation_url(endpoint) }),
            Err(e) => Err(ServiceError::from(e).with("events", events.into())),
        }
    }
}

impl Service {
    /// The local registry, which stands in for ECR, started if it is not running; it runs as
    /// long as this process.
    pub async fn registry(&self) -> Result<Registry> {
        Ok(Registry { address: self.engine.local_registry().await? })
    }

    /// The newest notifications given up on after their retries.
    pub async fn notify_failures(&self) -> Result<Vec<store::NotifyFailure>> {
        Ok(self.engine.store().notify_failures(100).await?)
    }

    /// Sets the weights of some of an endpoint's variants; its other variants keep theirs.
    pub async fn set_weights(&self, endpoint: &Name, request: &WeightsRequest) -> Result<EndpointView> {
        let bad = |message: String| ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        if request.weights.is_empty() {
            return Err(bad("weights names at least one variant".to_owned())
                .hint(r#"e.g. {"weights": {"AllTraffic": 0.9, "B": 0.1}}"#));
        }
        let mut weights = BTreeMap::new();
        for (variant, weight) in &request.weights {
            let variant = name("variant", variant)?;
            if !(weight.is_finite() && *weight >= 0.0) {
                return Err(bad(format!("the weight of {variant} must be a number of 0 or more")));
            }
            weights.insert(variant, *weight);
        }
        if self.engine.store().endpoint(endpoint).await?.is_none() {
            return Err(no_endpoint(endpoint));
        }
        self.engine.set_weights(endpoint, &weights).await?;
        self.endpoint(endpoint).await
    }
}

/// What a webhook delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookOutcome {
    /// A run of the pushed commit was queued.
    Started,
    /// Nothing to do: another event, a tag, a deleted branch, a filtered-out branch or paths.
    Ignored,
    /// This delivery was seen before; it starts nothing again.
    Duplicate,
    /// GitHub's ping, answered.
    Pong,
}

/// The answer to a webhook delivery.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HookAnswer {
    pub outcome: HookOutcome,
    pub message: String,
    /// The run it started.
    pub run: Option<RunRecord>,
}

impl Service {
    /// A push webhook for `project` from `provider`: checked against the secret the project's
    /// `[triggers.push]` names, filtered by its branches and paths, and started once per delivery.
    pub async fn hook(
        &self,
        provider: &str,
        project: &Name,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<HookAnswer> {
        use crate::hooks::{self, Event, Provider};
        let provider = Provider::parse(provider).ok_or_else(|| {
            ServiceError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no webhook provider {}", names::excerpt(provider, 40)),
            )
            .hint("the providers are github, gitlab and gitea: /hooks/github/<project>")
        })?;
        let (trigger, branch) = self.engine.push_trigger(project).await?;
        let secret = trigger.secret.read().map_err(|why| {
            ServiceError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "hook_secret_unreadable",
                format!("this server cannot read the webhook secret of {project}: {why}"),
            )
            .hint("set it where [triggers.push] `secret` says, for the server's process, and restart the server")
        })?;
        hooks::verify(provider, headers, body, &secret)?;
        let delivery = hooks::read(provider, headers, body)?;
        let answer = |outcome, message: String| Ok(HookAnswer { outcome, message, run: None });
        let push = match delivery.event {
            Event::Ping => {
                return answer(HookOutcome::Pong, format!("{project} takes pushes from {}", provider.as_str()));
            }
            Event::Other(event) => return answer(HookOutcome::Ignored, format!("{event} events start nothing")),
            Event::Push(push) => push,
        };
        let Some(pushed) = push.branch.as_deref() else {
            return answer(HookOutcome::Ignored, "a tag push starts nothing".to_owned());
        };
        if push.deletes_branch() {
            return answer(HookOutcome::Ignored, format!("deleting {pushed} starts nothing"));
        }
        if !trigger.takes_branch(pushed, Some(&branch)) {
            let watched = if trigger.branches.is_empty() { branch.clone() } else { trigger.branches.join(", ") };
            return answer(
                HookOutcome::Ignored,
                format!("pushes to {pushed} start nothing; {project} watches {watched}"),
            );
        }
        if !trigger.takes_files(push.files.iter().map(String::as_str), push.listed_all) {
            let paths = trigger.paths.join(", ");
            return answer(HookOutcome::Ignored, format!("the push changed nothing under {paths}"));
        }
        let store = self.engine.store();
        if !store.record_delivery(provider.as_str(), &delivery.id, project).await? {
            return answer(HookOutcome::Duplicate, format!("delivery {} was seen before", delivery.id));
        }
        let started = store::Trigger {
            kind: store::TriggerKind::Push,
            detail: Some(format!("{} delivery {}", provider.as_str(), delivery.id)),
            by: push.pusher.clone(),
        };
        match self.engine.submit_commit(project, &push.commit, &started).await {
            Ok(submitted) => Ok(HookAnswer {
                outcome: if submitted.duplicate { HookOutcome::Duplicate } else { HookOutcome::Started },
                message: format!("{project} #{} builds {pushed} at {}", submitted.run.number, push.commit),
                run: Some(submitted.run),
            }),
            Err(e) => {
                // Not started, so the provider's redelivery may start it.
                let _ = store.forget_delivery(provider.as_str(), &delivery.id).await;
                Err(e.into())
            }
        }
    }
}

/// One stretch of time an endpoint served the same variants.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Served {
    /// From when (ms), until when (ms; absent for what it serves now).
    pub from: i64,
    pub until: Option<i64>,
    /// Empty for a stretch when it was deleted, or served no registered model (multi-model, pipeline).
    pub variants: Vec<ServedVariant>,
    pub deleted: bool,
}

/// A variant of an endpoint at a time: its model version, the run and commit it came from, and who approved it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ServedVariant {
    pub variant: String,
    pub model_group: String,
    pub model_version: i64,
    pub weight: f64,
    /// The run that registered the version.
    pub project: Option<String>,
    pub run: Option<i64>,
    pub commit: Option<String>,
    /// Who approved the version, and why (when an approval stage let it through).
    pub approved_by: Option<String>,
    pub approval_reason: Option<String>,
}

impl Service {
    /// What an endpoint served, oldest first; with `at`, only what it served then (nothing when
    /// it did not exist).
    pub async fn history(&self, endpoint: &Name, at: Option<i64>) -> Result<Vec<Served>> {
        let store = self.engine.store();
        let events = store.endpoint_events(endpoint).await?;
        if events.is_empty() {
            return Err(no_endpoint(endpoint).hint("an endpoint's history starts with its first deploy"));
        }
        let mut stretches: Vec<Served> = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let until = events.get(index + 1).map(|next| next.at);
            let deleted = event.kind == store::EventKind::EndpointDeleted;
            let mut variants = Vec::new();
            for v in event.data.0["variants"].as_array().into_iter().flatten() {
                let (Some(group), Some(version)) = (v["model_group"].as_str(), v["model_version"].as_i64()) else {
                    continue;
                };
                variants.push(self.served_variant(v, group, version).await?);
            }
            stretches.push(Served { from: event.at, until, variants, deleted });
        }
        Ok(match at {
            None => stretches,
            Some(at) => stretches
                .into_iter()
                .filter(|s| s.from <= at && s.until.is_none_or(|until| at < until) && !s.deleted)
                .collect(),
        })
    }

    /// The model version an endpoint served before its current one, from its history.
    pub async fn previous_version(&self, endpoint: &Name) -> Result<Option<ServedVariant>> {
        Ok(previous_in(&self.history(endpoint, None).await?))
    }

    /// Deploys, all at once, the model version the endpoint served before its current one.
    pub async fn rollback(&self, endpoint: &Name) -> Result<Deployed> {
        let Some(previous) = self.previous_version(endpoint).await? else {
            return Err(ServiceError::new(
                StatusCode::CONFLICT,
                "nothing_to_roll_back_to",
                format!("{endpoint} has served no other registered model version"),
            ));
        };
        let request = DeployRequest {
            model_group: previous.model_group,
            model_version: Some(previous.model_version),
            ..DeployRequest::default()
        };
        self.deploy(endpoint, &request).await
    }

    async fn served_variant(&self, recorded: &serde_json::Value, group: &str, version: i64) -> Result<ServedVariant> {
        let store = self.engine.store();
        let registered = match store.model_version(group, version).await {
            Ok(registered) => Some(registered),
            Err(store::Error::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let run = match &registered {
            Some(model) => store.run_by_id(model.run_id).await.ok(),
            None => None,
        };
        let commit = registered.as_ref().and_then(|m| m.lineage.0["commit"].as_str().map(str::to_owned));
        let approval = store.approval_of(group, version).await?;
        Ok(ServedVariant {
            variant: recorded["variant"].as_str().unwrap_or("AllTraffic").to_owned(),
            model_group: group.to_owned(),
            model_version: version,
            weight: recorded["weight"].as_f64().unwrap_or(1.0),
            project: run.as_ref().map(|r| r.project.clone()),
            run: run.as_ref().map(|r| r.number),
            commit: commit.or_else(|| run.and_then(|r| r.commit_sha)),
            approved_by: approval.as_ref().and_then(|a| a.decided_by.clone()),
            approval_reason: approval.and_then(|a| a.reason),
        })
    }
}

/// What `POST /api/v1/gc` is asked.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Only list what would go.
    #[serde(default)]
    pub dry_run: bool,
}

impl Service {
    /// Removes (or with `dry_run` lists) the runs past each project's `keep_runs` that nothing uses.
    pub async fn gc(&self, request: &GcRequest) -> Result<engine::GcReport> {
        Ok(self.engine.gc(request.dry_run).await?)
    }
}

/// The drift check's defaults, as `[triggers.drift]` has them.
pub const DRIFT_WINDOW: usize = 1000;

impl Service {
    /// How far `endpoint`'s newest `window` captured requests have drifted from the training data
    /// of the model version it serves: each feature's population stability index.
    pub async fn drift(
        &self,
        endpoint: &Name,
        window: Option<usize>,
        threshold: Option<f64>,
    ) -> Result<engine::DriftReport> {
        let window = window.unwrap_or(DRIFT_WINDOW);
        if !(1..=10_000_000).contains(&window) {
            return Err(ServiceError::new(StatusCode::BAD_REQUEST, "invalid_request", "window is 1 to 10000000 rows"));
        }
        let threshold = threshold.unwrap_or(pipeline::DEFAULT_DRIFT_THRESHOLD);
        if !(threshold > 0.0 && threshold.is_finite()) {
            return Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "threshold is a positive number",
            )
            .hint("0.1 is a moderate shift, 0.2 (the default) a real one"));
        }
        match self.engine.drift(endpoint, window, 0, threshold).await {
            Err(engine::Error::Store(store::Error::NotFound(_))) => Err(no_endpoint(endpoint)),
            other => Ok(other?),
        }
    }
}

/// In a history (oldest first), the version served before the current one.
pub fn previous_in(history: &[Served]) -> Option<ServedVariant> {
    let mut served = history.iter().rev().filter(|s| !s.deleted).filter_map(|s| s.variants.first());
    let current = served.next();
    served
        .find(|v| current.is_none_or(|c| (&c.model_group, c.model_version) != (&v.model_group, v.model_version)))
        .cloned()
}

fn no_endpoint(endpoint: &Name) -> ServiceError {
    ServiceError::new(StatusCode::NOT_FOUND, "not_found", format!("no endpoint {endpoint}"))
        .hint("`sagebrush endpoints` lists them")
}

fn submitted_view(s: engine::Submitted) -> Submitted {
    Submitted { run: s.run, stages: s.stages, duplicate: s.duplicate }
}
