//! Submitting and executing runs: the stage loop with timeouts, retries and cancellation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use names::Name;
use pipeline::{Pipeline, Resolved, Stage};
use store::{NewRun, RunRecord, RunStatus, StageStatus, Trigger, TriggerKind};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::live::RunEnd;
use crate::secrets::Secrets;
use crate::stages::{self, StageFailure, StageOutput};
use crate::{Engine, Error, error::io_error};

/// How often the executing process looks for a cancel request.
const CANCEL_POLL: Duration = Duration::from_millis(200);

/// A run that was accepted: queued, or executing.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The run as first recorded.
    pub run: RunRecord,
    /// The stage names in order.
    pub stages: Vec<String>,
    /// True when the same commit of the project, with the same parameters, was queued already: `run` is that run.
    pub duplicate: bool,
}

/// What a stage can see while it runs.
pub(crate) struct RunContext {
    pub engine: Engine,
    pub run: RunRecord,
    pub pipeline: Pipeline,
    pub resolved: Resolved,
    pub project_dir: PathBuf,
    /// Where stages read project files from: the project folder, or its clone.
    pub source_dir: PathBuf,
    /// Outputs of finished stages, by stage name, in order.
    pub outputs: Vec<(Name, StageOutput)>,
    pub cancel: watch::Receiver<bool>,
    /// Endpoints this run made with `delete_after_run`: deleted when it ends, however it ends.
    pub temporary_endpoints: Vec<Name>,
    /// Its secret parameters' values, for shell stages' environments and for masking.
    pub secrets: Secrets,
}

impl RunContext {
    /// The most recent output that `pick` finds (e.g. [`StageOutput::train`]).
    pub fn latest<'a, T>(&'a self, pick: impl Fn(&'a StageOutput) -> Option<&'a T>) -> Option<&'a T> {
        self.outputs.iter().rev().find_map(|(_, output)| pick(output))
    }
}

impl Engine {
    /// Validates the project's pipeline and parameters and records a new run: queued, when this
    /// engine runs a queue ([`Engine::run_queue`]), or started in this process at once.
    ///
    /// Nothing is recorded when the pipeline file or a parameter is invalid.
    pub async fn submit(
        &self,
        project: &Path,
        overrides: &[(String, String)],
        trigger: &Trigger,
    ) -> Result<Submitted, Error> {
        self.submit_inner(Source::Folder(project.to_owned()), overrides, trigger, None).await
    }

    /// Starts a new run with the parameters of run `number`, reusing the outputs of the stages before
    /// `from`; `by` is who asked (a token's name, or `local`).
    pub async fn retry(&self, project: &Name, number: i64, from: Option<&Name>, by: &str) -> Result<Submitted, Error> {
        let original = self.store().run(project, Some(number)).await?;
        if let Some(from) = from {
            // Checked now, so a retry that cannot reuse its stages is refused before it is queued.
            self.reused_outputs(&original, from).await?;
        }
        let overrides = overrides_of(&original);
        // A git project's retry builds the commit the original built.
        let source = match self.git_project(project).await? {
            Some(mirror) => {
                let commit = original.requested_commit.clone().or(original.commit_sha.clone()).ok_or_else(|| {
                    Error::Invalid(format!("run {project} #{number} recorded no commit to build again"))
                })?;
                Source::Git { mirror, commit }
            }
            None => Source::Folder(PathBuf::from(&original.project_path)),
        };
        let retry = Retry { of: number, from: from.cloned() };
        let trigger =
            Trigger { kind: TriggerKind::Retry, detail: Some(format!("of #{number}")), by: Some(by.to_owned()) };
        self.submit_inner(source, &overrides, &trigger, Some(retry)).await
    }

    /// The outputs of the stages of `original` before `from`, for a retry from `from`.
    async fn reused_outputs(&self, original: &RunRecord, from: &Name) -> Result<Vec<(Name, StageOutput)>, Error> {
        let (project, number) = (&original.project, original.number);
        let stages = self.store().stages(original.id).await?;
        let Some(position) = stages.iter().position(|s| *from == s.name) else {
            let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "run {project} #{number} has no stage `{from}`; its stages are: {}",
                names.join(", ")
            )));
        };
        let before = &stages[..position];
        if let Some(stage) = before.iter().find(|s| !s.status.has_outputs()) {
            return Err(Error::Invalid(format!(
                "cannot reuse stage `{}` of run {project} #{number}: it {}; retry from `{}` or earlier",
                stage.name, stage.status, stage.name
            )));
        }
        outputs_of(original, before)
    }

    pub(crate) async fn submit_inner(
        &self,
        source: Source,
        overrides: &[(String, String)],
        trigger: &Trigger,
        retry: Option<Retry>,
    ) -> Result<Submitted, Error> {
        let queued = self.inner.queue_limit.get().is_some();
        let (project_dir, pipeline, commit, folder) = match source {
            Source::Folder(project) => {
                let (project_dir, file) = crate::projects::locate(&project)?;
                let pipeline = pipeline::load(&file)?;
                let commit = if queued { clean_commit(&project_dir).await } else { None };
                (project_dir, pipeline, commit, true)
            }
            Source::Git { mirror, commit } => {
                let pipeline = crate::projects::pipeline_at(&mirror, &commit).await?;
                (mirror, pipeline, Some(commit), false)
            }
        };
        let resolved = pipeline.resolve(overrides)?;
        crate::stages::build::check(self, &resolved)?;
        crate::stages::train_managed::check(self, &resolved)?;
        crate::stages::deploy_managed::check(self, &pipeline, &resolved)?;
        // A git project's files are checked out when the run starts; its paths are checked then.
        if folder {
            check_path_parameters(&pipeline, &resolved, &project_dir)?;
        }
        let stages: Vec<String> = resolved.stages.iter().map(|s| s.name.to_string()).collect();
        let stage_rows: Vec<(String, String)> =
            resolved.stages.iter().map(|s| (s.name.to_string(), s.kind.as_str().to_owned())).collect();
        // Read now as well, so a secret that cannot be read is refused before anything is recorded.
        Secrets::read(&resolved)?;
        let parameters: serde_json::Map<String, serde_json::Value> =
            resolved.parameters.iter().map(|(name, value)| (name.clone(), parameter_json(value))).collect();
        let parameters = serde_json::Value::Object(parameters).to_string();
        let secrets: serde_json::Map<String, serde_json::Value> = resolved
            .parameters
            .iter()
            .filter_map(|(name, value)| match value {
                pipeline::Value::Secret(source) => Some((name.clone(), source.to_string().into())),
                _ => None,
            })
            .collect();
        let secrets = serde_json::Value::Object(secrets).to_string();
        let project_path = project_dir.display().to_string();
        if queued
            && let Some(commit) = &commit
            && let Some(run) = self.store().queued_duplicate(&pipeline.name, commit, &parameters).await?
        {
            return Ok(Submitted { run, stages, duplicate: true });
        }
        let run = self
            .store()
            .create_run(NewRun {
                project: pipeline.name.as_str(),
                project_path: &project_path,
                parameters: &parameters,
                secrets: &secrets,
                trigger,
                status: if queued { RunStatus::Queued } else { RunStatus::Running },
                owner: (!queued).then_some(self.inner.owner.as_str()),
                retry_of: retry.as_ref().map(|r| r.of),
                retry_from: retry.as_ref().and_then(|r| r.from.as_deref()),
                requested_commit: commit.as_deref(),
                stages: &stage_rows,
            })
            .await?;
        if queued {
            self.inner.wake.notify_one();
        } else {
            self.launch(run.clone()).await;
        }
        Ok(Submitted { run, stages, duplicate: false })
    }

    /// Executes a run this process owns (created running, or claimed from the queue) on a task of
    /// its own: the pipeline file and parameters are read again, as they are when the run starts.
    pub(crate) async fn launch(&self, run: RunRecord) {
        let (execution, cancel) = self.inner.live.start(run.id);
        let engine = self.clone();
        tokio::spawn(async move {
            let (run_id, number, project) = (run.id, run.number, run.project.clone());
            let label = format!("{} #{number}", run.project);
            let end = match engine.prepare(&run).await {
                Ok((pipeline, resolved, project_dir, earlier)) => {
                    let project = pipeline.name.clone();
                    let end = engine.execute(run, pipeline, resolved, project_dir, earlier, cancel).await;
                    let _ = std::fs::remove_dir_all(engine.home().jobs_dir(&project, number));
                    end
                }
                Err(e) => Some(RunEnd::Failed(format!("the run could not start: {e}"))),
            };
            let Some(end) = end else {
                // Waiting: no process owns it until someone decides.
                engine.inner.live.forget(execution);
                engine.inner.wake.notify_one();
                return;
            };
            // Known here first: a follower sees how the run ended even while the disk is too full to record it.
            engine.inner.live.end(execution, end.clone());
            engine.record_end(run_id, &label, &end).await;
            engine.inner.live.forget(execution);
            engine.inner.wake.notify_one();
            if engine.inner.queue_limit.get().is_some() {
                engine.retain(&project).await;
            }
        });
    }

    /// Fails a queued run that could not be started: known at once to whoever follows it, recorded as soon as the store takes it.
    pub(crate) fn fail_unstarted(&self, run: &RunRecord, reason: String) {
        let (execution, _cancel) = self.inner.live.start(run.id);
        let end = RunEnd::Failed(reason);
        self.inner.live.end(execution, end.clone());
        let (engine, run_id, label) = (self.clone(), run.id, format!("{} #{}", run.project, run.number));
        tokio::spawn(async move {
            engine.record_end(run_id, &label, &end).await;
            engine.inner.live.forget(execution);
        });
    }

    /// What a run needs to execute, from its record.
    async fn prepare(&self, run: &RunRecord) -> Result<(Pipeline, Resolved, PathBuf, Earlier), Error> {
        let name = Name::parse(&run.project).map_err(|e| Error::Invalid(format!("recorded project: {e}")))?;
        let folder = match (self.git_project(&name).await?, &run.requested_commit) {
            (Some(mirror), Some(commit)) => {
                let target = self.home().run_dir(&name, run.number).join("src");
                crate::projects::check_out(&mirror, commit, &target).await?;
                self.store().set_run_commit(run.id, commit).await?;
                target
            }
            _ => PathBuf::from(&run.project_path),
        };
        let (project_dir, file) = crate::projects::locate(&folder)?;
        let pipeline = pipeline::load(&file)?;
        let resolved = pipeline.resolve(&overrides_of(run))?;
        // A run that went on after an approval has its first stages done already.
        let own = self.store().stages(run.id).await?;
        let done = own.iter().take_while(|s| s.status.has_outputs()).count();
        let earlier = if done > 0 {
            Earlier { outputs: outputs_of(run, &own[..done])?, recorded: true }
        } else {
            let outputs = match (run.retry_of, &run.retry_from) {
                (Some(of), Some(from)) => {
                    let original = self.store().run(&pipeline.name, Some(of)).await?;
                    let from = Name::parse(from).map_err(|e| Error::Invalid(format!("recorded retry stage: {e}")))?;
                    self.reused_outputs(&original, &from).await?
                }
                _ => Vec::new(),
            };
            Earlier { outputs, recorded: false }
        };
        Ok((pipeline, resolved, project_dir, earlier))
    }

    /// Writes how a run ended, retrying until the store takes it: a run must never stay `running`
    /// because one write failed. A full disk frees the store's reserve first.
    async fn record_end(&self, run_id: i64, run: &str, end: &RunEnd) {
        let mut delay = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            let error = match self.store().finish_run(run_id, end.status(), end.reason()).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::warn!("recorded the end of run {run} after {failures} failed attempt(s)");
                    }
                    return;
                }
                Err(e) => e,
            };
            if error.is_disk_full() && self.store().release_reserve() {
                tracing::warn!(
                    "the disk of {} is full: freed the store's reserve to record run {run}",
                    self.home().root().display()
                );
                continue;
            }
            if failures == 0 {
                tracing::error!("recording the end of run {run}: {error}; retrying until it can be written");
            }
            failures += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Decides a waiting run's approval as `by`, with a reason. Approved, the run is queued to go
    /// on after its approval stage (a process that runs the queue picks it up); rejected, it fails.
    pub async fn decide(
        &self,
        run_id: i64,
        approve: bool,
        by: &str,
        reason: &str,
    ) -> Result<store::ApprovalRecord, Error> {
        let decided = self.store().decide_approval(run_id, approve, by, reason).await?;
        self.inner.wake.notify_one();
        Ok(decided)
    }

    /// Records what the engine did by itself (a run's promotion, a rollback, a TTL's deletion) in the
    /// audit beside the API's calls; best effort, as a full audit must not fail the run.
    pub(crate) async fn audit(&self, actor: &str, action: &str, status: u16) {
        if let Err(e) = self.store().record_audit(actor, action, status).await {
            tracing::warn!("recording `{action}` in the audit: {e}");
        }
    }

    /// Rejects the approvals nobody decided in time.
    pub(crate) async fn expire_approvals(&self) -> Result<(), Error> {
        for approval in self.store().expired_approvals(store::now_ms()).await? {
            let waited = approval.expires_at.map_or(0, |at| at - approval.requested_at);
            let reason = format!("nobody decided within {}", humanize(Duration::from_millis(waited.max(0) as u64)));
            match self.store().decide_approval(approval.run_id, false, "timeout", &reason).await {
                Ok(_) | Err(store::Error::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Asks a run to stop: at once when this process runs it, else through the store for the process that does.
    /// False if the run already ended.
    pub async fn cancel(&self, run_id: i64) -> Result<bool, Error> {
        if self.inner.live.ended(run_id).is_some() {
            return Ok(false);
        }
        if self.inner.live.cancel(run_id) {
            // Best effort: the run stops without it, and a full disk must not stop a cancel.
            let _ = self.store().request_cancel(run_id).await;
            return Ok(true);
        }
        if self.store().cancel_queued(run_id).await? {
            return Ok(true);
        }
        Ok(self.store().request_cancel(run_id).await?)
    }

    /// A run and its stages as this process knows them: the store, and the end of a run of this
    /// process that could not be recorded yet.
    pub async fn run_view(&self, run_id: i64) -> Result<(RunRecord, Vec<store::StageRecord>), Error> {
        let mut run = self.store().run_by_id(run_id).await?;
        let stages = self.store().stages(run_id).await?;
        self.with_live_end(&mut run);
        Ok((run, stages))
    }

    /// Several runs with their stages, as [`Engine::run_view`] shows each, in two queries.
    pub async fn runs_view(&self, runs: Vec<RunRecord>) -> Result<Vec<(RunRecord, Vec<store::StageRecord>)>, Error> {
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let mut stages: std::collections::HashMap<i64, Vec<store::StageRecord>> = std::collections::HashMap::new();
        for stage in self.store().stages_of(&ids).await? {
            stages.entry(stage.run_id).or_default().push(stage);
        }
        Ok(runs
            .into_iter()
            .map(|mut run| {
                self.with_live_end(&mut run);
                let stages = stages.remove(&run.id).unwrap_or_default();
                (run, stages)
            })
            .collect())
    }

    /// How a run ended, when this process knows it before the store does.
    fn with_live_end(&self, run: &mut RunRecord) {
        if !run.status.is_finished()
            && let Some(end) = self.inner.live.ended(run.id)
        {
            run.status = end.status();
            run.reason = end.reason().map(str::to_owned);
        }
    }

    async fn execute(
        &self,
        run: RunRecord,
        pipeline: Pipeline,
        resolved: Resolved,
        project_dir: PathBuf,
        earlier: Earlier,
        cancel: watch::Receiver<bool>,
    ) -> Option<RunEnd> {
        let secrets = match Secrets::read(&resolved) {
            Ok(secrets) => secrets,
            Err(e) => return Some(RunEnd::Failed(format!("the run could not start: {e}"))),
        };
        self.watch_cancel(run.id, cancel.clone());
        let mut context = RunContext {
            engine: self.clone(),
            run,
            pipeline,
            source_dir: project_dir.clone(),
            project_dir,
            outputs: Vec::new(),
            resolved,
            cancel,
            temporary_endpoints: Vec::new(),
            secrets,
        };
        let result = self.execute_stages(&mut context, earlier).await;
        for endpoint in std::mem::take(&mut context.temporary_endpoints) {
            let deleted = match crate::stages::deploy_managed::hosted_on(&context.resolved, &endpoint) {
                Some(settings) => crate::stages::deploy_managed::delete(self, &endpoint, settings).await,
                None => self.delete_endpoint(&endpoint).await.map(drop).map_err(|e| e.to_string()),
            };
            if let Err(e) = deleted {
                tracing::warn!("deleting the run's endpoint {endpoint}: {e}");
            }
        }
        match result {
            Ok(()) => Some(RunEnd::Succeeded),
            Err(Ended::Cancelled) => Some(RunEnd::Cancelled),
            Err(Ended::Failed(reason)) => Some(RunEnd::Failed(reason)),
            Err(Ended::Waiting) => None,
        }
    }

    async fn execute_stages(&self, context: &mut RunContext, earlier: Earlier) -> Result<(), Ended> {
        let stages = context.resolved.stages.clone();
        for (position, stage) in stages.iter().enumerate() {
            let position = position as i64;
            let run_id = context.run.id;
            if let Some((_, output)) = earlier.outputs.iter().find(|(name, _)| *name == stage.name) {
                stages::restore(context, output);
                if !earlier.recorded {
                    self.store()
                        .finish_stage(run_id, position, StageStatus::Reused, None, &output.to_json())
                        .await
                        .map_err(Ended::store)?;
                }
                context.outputs.push((stage.name.clone(), output.clone()));
                continue;
            }
            if *context.cancel.borrow() {
                self.skip_rest(run_id, position, StageStatus::Cancelled).await;
                return Err(Ended::Cancelled);
            }
            match self.run_stage(context, position, stage).await {
                Ok(output) => {
                    self.store()
                        .finish_stage(run_id, position, StageStatus::Succeeded, None, &output.to_json())
                        .await
                        .map_err(Ended::store)?;
                    context.outputs.push((stage.name.clone(), output));
                }
                // Recorded as waiting; the run goes on when someone decides.
                Err(StageFailure::Waiting) => return Err(Ended::Waiting),
                Err(StageFailure::Cancelled) => {
                    let _ = self
                        .store()
                        .finish_stage(run_id, position, StageStatus::Cancelled, None, &serde_json::json!({}))
                        .await;
                    self.skip_rest(run_id, position + 1, StageStatus::Skipped).await;
                    return Err(Ended::Cancelled);
                }
                Err(StageFailure::Failed { reason, output }) => {
                    let _ =
                        self.store().finish_stage(run_id, position, StageStatus::Failed, Some(&reason), &output).await;
                    self.skip_rest(run_id, position + 1, StageStatus::Skipped).await;
                    return Err(Ended::Failed(format!("stage `{}` failed: {reason}", stage.name)));
                }
            }
        }
        Ok(())
    }

    /// Runs one stage with its retries and timeout, writing its log.
    async fn run_stage(
        &self,
        context: &mut RunContext,
        position: i64,
        stage: &Stage,
    ) -> Result<StageOutput, StageFailure> {
        let log_path = self.home().stage_log(&context.pipeline.name, context.run.number, &stage.name);
        let mut last = StageFailure::failed("the stage did not run");
        for attempt in 1..=stage.retries + 1 {
            self.store().start_stage(context.run.id, position).await.map_err(StageFailure::store)?;
            let mut log = open_log(&log_path).await.map_err(|e| StageFailure::failed(e.to_string()))?;
            if attempt > 1 {
                let _ = log.write_all(format!("--- attempt {attempt} of {} ---\n", stage.retries + 1).as_bytes()).await;
            }
            let timeout = stage.timeout.unwrap_or(Duration::from_secs(24 * 3600));
            let mut cancel = context.cancel.clone();
            let result = tokio::select! {
                result = tokio::time::timeout(timeout, stages::run(context, stage, &mut log)) => match result {
                    Ok(result) => result,
                    Err(_) => Err(StageFailure::failed(format!("timed out after {}", humanize(timeout)))),
                },
                _ = cancel.wait_for(|c| *c) => Err(StageFailure::Cancelled),
            };
            match result {
                Err(StageFailure::Failed { reason, output }) => {
                    // A reason may quote what a command printed.
                    let reason = context.secrets.mask(&reason);
                    let _ = log.write_all(format!("error: {reason}\n").as_bytes()).await;
                    let _ = log.flush().await;
                    last = StageFailure::Failed { reason, output };
                }
                other => {
                    let _ = log.flush().await;
                    return other;
                }
            }
        }
        Err(last)
    }

    async fn skip_rest(&self, run_id: i64, from: i64, status: StageStatus) {
        if let Ok(stages) = self.store().stages(run_id).await {
            for stage in stages.iter().filter(|s| s.position >= from && s.status == StageStatus::Pending) {
                let _ = self.store().finish_stage(run_id, stage.position, status, None, &serde_json::json!({})).await;
            }
        }
    }

    /// Polls the store's cancel flag (set by another process) while the run executes, and cancels the run when it is set.
    fn watch_cancel(&self, run_id: i64, cancel: watch::Receiver<bool>) {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CANCEL_POLL).await;
                if *cancel.borrow() || cancel.has_changed().is_err() {
                    break;
                }
                if engine.store().cancel_requested(run_id).await.unwrap_or(false) {
                    engine.inner.live.cancel(run_id);
                    break;
                }
            }
        });
    }
}

/// The outputs `stages` of `run` recorded, to reuse.
fn outputs_of(run: &RunRecord, stages: &[store::StageRecord]) -> Result<Vec<(Name, StageOutput)>, Error> {
    let (project, number) = (&run.project, run.number);
    stages
        .iter()
        .map(|s| {
            let name = Name::parse(&s.name).map_err(|e| Error::Invalid(format!("recorded stage: {e}")))?;
            let output = StageOutput::parse(&s.kind, s.outputs.0.clone()).map_err(|e| {
                Error::Invalid(format!(
                    "stage `{}` of run {project} #{number} recorded no output this version can reuse ({e}); \
                     retry from `{}`",
                    s.name, s.name
                ))
            })?;
            Ok((name, output))
        })
        .collect()
}

/// Where a run's pipeline file and sources come from.
pub(crate) enum Source {
    /// A folder on this machine, as it is when the run starts.
    Folder(PathBuf),
    /// A commit of a git project, from the server's mirror of its repository.
    Git { mirror: PathBuf, commit: String },
}

pub(crate) struct Retry {
    of: i64,
    from: Option<Name>,
}

enum Ended {
    Cancelled,
    Failed(String),
    /// At an approval: the run waits, owned by no process, until someone decides.
    Waiting,
}

/// Outputs of stages a run does not run again: those before a retry's stage, reused from the
/// run it retries, or (`recorded`) the run's own stages done before it waited for an approval.
pub(crate) struct Earlier {
    outputs: Vec<(Name, StageOutput)>,
    recorded: bool,
}

impl Ended {
    fn store(e: store::Error) -> Ended {
        Ended::Failed(format!("recording the stage: {e}"))
    }
}

/// A `path` parameter names something in the project, checked before the run is recorded (when
/// the project is the folder itself; a checkout stage brings its files later). An `s3://` URI is
/// checked where it is used, by the stage that downloads it.
fn check_path_parameters(pipeline: &Pipeline, resolved: &Resolved, project_dir: &Path) -> Result<(), Error> {
    let cloned = resolved.stages.iter().any(|s| matches!(&s.kind, pipeline::StageKind::Checkout { repo: Some(_), .. }));
    if cloned {
        return Ok(());
    }
    for (name, value) in &resolved.parameters {
        if let pipeline::Value::Path(path) = value
            && !path.starts_with("s3://")
            && !project_dir.join(path).exists()
        {
            return Err(Error::Invalid(format!(
                "parameter `{name}`: {} does not exist in {} ({} paths are relative to the project)",
                names::excerpt(path, 80),
                project_dir.display(),
                pipeline.name
            )));
        }
    }
    Ok(())
}

/// `-p name=value` overrides that give a run's recorded parameters again, a secret's as where it is read.
fn overrides_of(run: &RunRecord) -> Vec<(String, String)> {
    let mut parameters = run.parameters.0.clone();
    parameters.extend(run.secrets.0.clone());
    parameters
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect()
}

/// The commit a clean git checkout of the project folder is at; `None` for a folder with changes,
/// or one that is not a repository (its runs are never taken for duplicates).
async fn clean_commit(dir: &Path) -> Option<String> {
    let git = |args: &'static [&'static str]| {
        tokio::process::Command::new("git").arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0").output()
    };
    let status = git(&["status", "--porcelain"]).await.ok()?;
    if !status.status.success() || !status.stdout.is_empty() {
        return None;
    }
    let head = git(&["rev-parse", "HEAD"]).await.ok()?;
    head.status.success().then(|| String::from_utf8_lossy(&head.stdout).trim().to_owned())
}

fn parameter_json(value: &pipeline::Value) -> serde_json::Value {
    match value {
        pipeline::Value::Int(i) => (*i).into(),
        pipeline::Value::Float(f) => (*f).into(),
        pipeline::Value::Bool(b) => (*b).into(),
        pipeline::Value::Secret(_) => crate::secrets::MASK.into(),
        other => other.to_string().into(),
    }
}

async fn open_log(path: &Path) -> Result<tokio::fs::File, Error> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_error(parent))?;
    }
    tokio::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).await.map_err(io_error(path))
}

/// `90s`, `10m`, `1h30m` style, for messages.
pub(crate) fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}
