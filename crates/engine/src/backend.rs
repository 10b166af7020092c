//! What the engine runs its work with, chosen when it opens: training jobs and the containers it
//! leaves behind. The engine's logic (the stage loop, retries, timeouts, cancellation) is the same
//! whatever runs the work, and is unit-tested on a fake with no processes and no Docker.

use std::sync::Arc;

use futures::future::BoxFuture;
use runtime::opt_ml::OptMl;
use runtime::training::{Outcome, TrainingJob};
use tokio::sync::watch;

use crate::stages::Log;

/// Runs training jobs under the SageMaker container contract.
pub trait Training: Send + Sync {
    /// Runs a job whose `/opt/ml` is laid out, until it ends: `Completed`, `Failed`, or `Stopped`
    /// when `cancel` turns true or its max runtime passes. Its output goes to `log`.
    fn run<'a>(
        &'a self,
        job: &'a TrainingJob,
        opt_ml: &'a OptMl,
        log: &'a mut Log,
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<Outcome, runtime::Error>>;
}

/// The containers of a home that no live process owns.
pub trait Containers: Send + Sync {
    /// Removes the home's containers for which `keep(owner)` is false; their names.
    fn remove_orphans<'a>(
        &'a self,
        home: &'a str,
        keep: &'a (dyn Fn(&str) -> bool + Send + Sync),
    ) -> BoxFuture<'a, Result<Vec<String>, runtime::Error>>;
}

/// The backends an engine is opened with.
#[derive(Clone)]
pub struct Backends {
    pub training: Arc<dyn Training>,
    pub containers: Arc<dyn Containers>,
}

impl Backends {
    /// This machine: the built-in algorithms and process folders as children, images through the Docker Engine.
    pub fn local() -> Backends {
        Backends { training: Arc::new(LocalTraining), containers: Arc::new(DockerContainers) }
    }
}

/// Training on this machine, as `runtime::training` runs each kind of algorithm.
struct LocalTraining;

impl Training for LocalTraining {
    fn run<'a>(
        &'a self,
        job: &'a TrainingJob,
        opt_ml: &'a OptMl,
        log: &'a mut Log,
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<Outcome, runtime::Error>> {
        Box::pin(runtime::training::run(job, opt_ml, log, cancel))
    }
}

/// Containers through the Docker Engine; without one there is nothing to remove.
struct DockerContainers;

impl Containers for DockerContainers {
    fn remove_orphans<'a>(
        &'a self,
        home: &'a str,
        keep: &'a (dyn Fn(&str) -> bool + Send + Sync),
    ) -> BoxFuture<'a, Result<Vec<String>, runtime::Error>> {
        Box::pin(async move {
            if runtime::docker::check_engine().await.is_err() {
                return Ok(Vec::new());
            }
            runtime::docker::remove_orphans(home, keep).await
        })
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A training backend that does what a test scripts, at once, with no process.

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// What the next job does.
    #[derive(Clone, Copy, Debug)]
    pub enum Job {
        /// Writes a model and completes.
        Completes,
        /// Fails with a reason, as a `train` that exits 1.
        Fails,
        /// Runs until it is cancelled (or timed out by its stage), then stops.
        Hangs,
    }

    /// Jobs done in the order scripted; once the script is used up, every job completes.
    #[derive(Default)]
    pub struct FakeTraining {
        script: Mutex<VecDeque<Job>>,
        pub started: Mutex<Vec<String>>,
    }

    impl FakeTraining {
        pub fn new(script: &[Job]) -> Arc<FakeTraining> {
            Arc::new(FakeTraining { script: Mutex::new(script.iter().copied().collect()), ..Default::default() })
        }
    }

    impl Training for FakeTraining {
        fn run<'a>(
            &'a self,
            job: &'a TrainingJob,
            opt_ml: &'a OptMl,
            log: &'a mut Log,
            mut cancel: watch::Receiver<bool>,
        ) -> BoxFuture<'a, Result<Outcome, runtime::Error>> {
            self.started.lock().unwrap().push(job.name.clone());
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Job::Completes);
            Box::pin(async move {
                let _ = log.write_all(format!("fake job {} {next:?}\n", job.name).as_bytes()).await;
                let outcome = |status, secondary, reason: Option<&str>| Outcome {
                    status,
                    secondary_status: secondary,
                    failure_reason: reason.map(str::to_owned),
                    metrics: [("train:accuracy".to_owned(), 0.97)].into(),
                };
                Ok(match next {
                    Job::Completes => {
                        let model = opt_ml.model_dir().join("model.json");
                        std::fs::write(&model, "{}")
                            .map_err(|e| runtime::Error::Io { path: model.display().to_string(), source: e })?;
                        outcome("Completed", "Completed", None)
                    }
                    Job::Fails => outcome("Failed", "Failed", Some("AlgorithmError: scripted to fail")),
                    Job::Hangs => {
                        let _ = cancel.wait_for(|c| *c).await;
                        outcome("Stopped", "Stopped", Some("stopped"))
                    }
                })
            })
        }
    }

    /// No containers, ever.
    pub struct NoContainers;

    impl Containers for NoContainers {
        fn remove_orphans<'a>(
            &'a self,
            _: &'a str,
            _: &'a (dyn Fn(&str) -> bool + Send + Sync),
        ) -> BoxFuture<'a, Result<Vec<String>, runtime::Error>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }
}
