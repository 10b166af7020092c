//! Runs pipelines: numbers runs, executes stages in order, persists every transition, and recovers after a crash.
//!
//! [`Engine`] is a cheap, cloneable handle. [`Engine::submit`] validates a project's
//! `sagebrush.toml` and its parameters before anything is recorded, creates the run
//! with its pending stages in one transaction, and executes it on a task. Each
//! stage's status is written to the [`store`] before the stage acts, and cancellation
//! is a flag in the store, so any process sharing the home directory can cancel a run.
//! [`Engine::open`] marks runs whose owning process died as failed (`interrupted`).

mod backend;
mod builtin_image;
mod deploy;
pub mod doctor;
mod drift;
mod error;
mod home;
mod live;
mod managed;
mod notify;
mod owner;
mod projects;
mod queue;
mod registry;
mod retention;
mod run;
mod secrets;
mod stages;
#[cfg(test)]
mod tests;
mod triggers;

pub use backend::{Backends, Containers, Training};
pub use deploy::{Hosting, Rollout, RolloutState};
pub use drift::{Baseline, DriftReport, FeatureBaseline, FeatureDrift};
pub use error::Error;
pub use home::Home;
pub use live::RunEnd;
pub use managed::{
    Hosted, Identity, ManagedEndpoint, ManagedError, ManagedHosting, ManagedJob, ManagedOutcome, ManagedRegistry,
    ManagedTraining, Progress, RegistryLogin,
};
pub use projects::PIPELINE_FILE;
pub use queue::default_limit as default_queue_limit;
pub use retention::{GcKept, GcReport, GcRun};
pub use run::Submitted;
pub use runtime::training::End as TrainingEnd;
pub use stages::outputs::{
    AbTestOutput, ApprovalOutput, ChampionOutput, CheckoutOutput, DeployOutput, GateOutput, ImageOutput,
    RegisterOutput, ShellOutput, SmokeTestOutput, StageOutput, TrainOutput,
};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use router::Router;
use store::{Artifacts, Store};

/// The engine: state, artifacts, the endpoint table it deploys to, and where that table is served.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    home: Home,
    store: Store,
    artifacts: Artifacts,
    router: Arc<Router>,
    router_url: String,
    sagebrush_exe: PathBuf,
    owner: String,
    deploy_locks: tokio::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each endpoint's traffic shift in progress, or its last one.
    rollouts: std::sync::Mutex<std::collections::HashMap<String, deploy::Rollout>>,
    live: live::Live,
    /// The local registry, when this process started it.
    registry: tokio::sync::Mutex<Option<tokio::process::Child>>,
    /// Set when this engine runs a queue: how many runs may run at once.
    queue_limit: std::sync::OnceLock<usize>,
    /// Wakes the queue's scheduler: a run was queued or ended.
    wake: tokio::sync::Notify,
    backends: Backends,
}

impl Engine {
    /// Opens the home directory's state, and fails runs that a dead process left running.
    ///
    /// `router_url` is where `router` is served (`http://127.0.0.1:8080`); smoke tests call it.
    pub async fn open(home: Home, router: Arc<Router>, router_url: String) -> Result<Engine, Error> {
        Engine::open_with(home, router, router_url, Backends::local()).await
    }

    /// [`Engine::open`] with the given backends.
    pub async fn open_with(
        home: Home,
        router: Arc<Router>,
        router_url: String,
        backends: Backends,
    ) -> Result<Engine, Error> {
        home.create()?;
        let store = Store::open_at(&home.database()).await?;
        let artifacts = Artifacts::open(&home.artifact_location(), &home.artifacts())?;
        let sagebrush_exe =
            std::env::current_exe().map_err(|e| Error::Io { path: "current executable".into(), source: e })?;
        let engine = Engine {
            inner: Arc::new(Inner {
                home,
                store,
                artifacts,
                router,
                router_url,
                sagebrush_exe,
                owner: owner::current(),
                deploy_locks: Default::default(),
                rollouts: Default::default(),
                live: Default::default(),
                registry: Default::default(),
                queue_limit: Default::default(),
                wake: Default::default(),
                backends,
            }),
        };
        engine.recover().await?;
        engine.keep_leases();
        Ok(engine)
    }

    /// Renews, for as long as this engine lives, the leases on the runs it runs, so that a server
    /// sharing the database does not take them for abandoned.
    fn keep_leases(&self) {
        let inner = Arc::downgrade(&self.inner);
        let every = std::time::Duration::from_millis(store::LEASE_MS as u64 / 3);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = inner.upgrade() else { return };
                if let Err(e) = inner.store.renew_leases(&inner.owner).await {
                    tracing::warn!("renewing the leases on this process's runs: {e}");
                }
            }
        });
    }

    /// The state store, for listings.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The home directory.
    pub fn home(&self) -> &Home {
        &self.inner.home
    }

    /// The endpoint table this engine deploys to.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Where the endpoint table is served.
    pub fn router_url(&self) -> &str {
        &self.inner.router_url
    }

    /// Fails every run whose owning process is gone, and removes its scratch files.
    /// The labels of every container this process starts.
    pub(crate) fn container_labels(&self) -> runtime::instance::Labels {
        runtime::instance::Labels {
            home: self.inner.home.root().display().to_string(),
            process: self.inner.owner.clone(),
        }
    }

    /// Stops and removes every container this process started, and the registry it started; call before exiting.
    ///
    /// Waits first (a while) for the ends of runs that ended but are not recorded yet (the store
    /// was failing, a full disk): leaving now would have the next process call them interrupted.
    pub async fn shutdown(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.inner.live.any_unrecorded() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let me = self.inner.owner.clone();
        self.remove_containers(|process| process != me).await;
        self.stop_registry().await;
    }

    /// Removes the containers of this home for which `keep(process label)` is false, logging what it removed.
    async fn remove_containers(&self, keep: impl Fn(&str) -> bool + Send + Sync) {
        let home = self.inner.home.root().display().to_string();
        match self.inner.backends.containers.remove_orphans(&home, &keep).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!("removed {} container(s): {}", removed.len(), removed.join(", "));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("could not remove containers: {e}"),
        }
    }

    async fn recover(&self) -> Result<(), Error> {
        // After a crash, containers whose sagebrush process is gone belong to nobody.
        self.remove_containers(owner::may_be_alive).await;
        self.recover_runs().await
    }

    /// Fails every running run whose owner is gone: a process of this machine that ended, or a
    /// server anywhere whose lease on the run lapsed. A server calls it again and again, so that
    /// it takes over from another server on the same database that died.
    pub(crate) async fn recover_runs(&self) -> Result<(), Error> {
        let now = store::now_ms();
        for run in self.inner.store.unfinished_runs().await? {
            let owner = run.owner.as_deref().unwrap_or("");
            let lapsed = run.lease_until.is_some_and(|until| until < now);
            let why = match owner::seen(owner) {
                owner::Seen::Gone => "stopped before the run finished",
                // This process's own lease lapses only when the database was out of reach: the run goes on.
                _ if lapsed && owner != self.inner.owner => "stopped renewing its lease on the run",
                _ => continue,
            };
            let stages = self.inner.store.stages(run.id).await?;
            let during = match stages.iter().find(|s| s.status == store::StageStatus::Running) {
                Some(stage) => format!(" while stage `{}` was running", stage.name),
                None => String::new(),
            };
            let reason =
                format!("interrupted{during}: the sagebrush process that ran it ({}) {why}", owner::describe(owner));
            tracing::warn!(project = %run.project, number = run.number, "{reason}");
            self.inner.store.fail_interrupted(run.id, &reason).await?;
            if let Ok(project) = names::Name::parse(&run.project) {
                let _ = std::fs::remove_dir_all(self.inner.home.jobs_dir(&project, run.number));
            }
        }
        Ok(())
    }
}

/// The first `program` on `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| Path::new(p).is_file())
}
