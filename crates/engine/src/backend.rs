//! What the engine runs its work with, chosen when it opens: training jobs, model servers, images,
//! and the containers a dead process left behind. The engine's logic (the stage loop, retries, timeouts, cancellation) is the same
//! whatever runs the work, and is unit-tested on a fake with no processes and no Docker.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use router::{AddressCheck, Dial, Upstream};
use runtime::Algorithm;
use runtime::docker;
use runtime::hosting::{ContainerInstance, ProcessInstance};
use runtime::instance::{Labels, Limits};
use runtime::opt_ml::OptMl;
use runtime::sbom::Sbom;
use runtime::training::{Outcome, TrainingJob};
use tokio::io::AsyncWrite;
use tokio::sync::watch;

/// Runs training jobs under the SageMaker container contract.
pub trait Training: Send + Sync {
    /// Runs a job whose `/opt/ml` is laid out, until it ends: `Completed`, `Failed`, or `Stopped`
    /// when `cancel` turns true or its max runtime passes. Its output goes to `log`.
    fn run<'a>(
        &'a self,
        job: &'a TrainingJob,
        opt_ml: &'a OptMl,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<Outcome, runtime::Error>>;
}

/// A model server to start for one instance of an endpoint.
pub struct ServeRequest<'a> {
    /// A process folder or an image (the built-in algorithms are answered in-process, not served).
    pub algorithm: &'a Algorithm,
    /// The instance's `/opt/ml`, its model unpacked.
    pub opt_ml: &'a OptMl,
    /// Where the server's output goes.
    pub log: &'a Path,
    /// How long it has to answer `/ping`.
    pub startup_timeout: Duration,
    /// A container's CPU and memory.
    pub limits: Limits,
    pub labels: &'a Labels,
    /// Names the container after the endpoint.
    pub name_hint: &'a str,
    /// The sagebrush binary, which sets a process folder's sandbox up.
    pub sagebrush_exe: &'a Path,
}

/// A started model server: where the router reaches it, and what keeps it running (dropped, it stops).
pub struct Served {
    pub upstream: Upstream,
    pub owner: Box<dyn Any + Send + Sync>,
}

/// Starts model servers under the SageMaker serving contract.
pub trait Serving: Send + Sync {
    /// Starts a server and waits until it answers `/ping`.
    fn start<'a>(&'a self, request: ServeRequest<'a>) -> BoxFuture<'a, Result<Served, runtime::Error>>;
}

/// Builds, pushes and describes images.
pub trait Images: Send + Sync {
    /// Whether images can be built here at all (a clear error when not).
    fn check(&self) -> BoxFuture<'_, Result<(), runtime::Error>>;
    /// Builds `dir` (holding a Dockerfile) as `tag`, its output to `log`.
    fn build<'a>(
        &'a self,
        dir: &'a Path,
        tag: &'a str,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), runtime::Error>>;
    /// Pushes `repository:tag`, logged in to the registry with `login` when there is one.
    fn push<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
        login: Option<&'a crate::RegistryLogin>,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), runtime::Error>>;
    /// An image's size in bytes and its repository digests.
    fn inspect<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(u64, Vec<String>), runtime::Error>>;
    /// The packages and files in an image.
    fn sbom<'a>(&'a self, image: &'a str, labels: &'a Labels) -> BoxFuture<'a, Result<Sbom, runtime::Error>>;
    /// Removes a local tag (retention); one already gone is not an error.
    fn remove<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), runtime::Error>>;
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

/// The backends an engine is opened with, one per kind of algorithm: which one trains or serves
/// an image (Docker here; SageMaker when a team configures it) is a choice of configuration, and
/// the engine never asks which it got.
#[derive(Clone)]
pub struct Backends {
    /// Trains the built-in algorithms and process folders.
    pub child_training: Arc<dyn Training>,
    /// Trains images.
    pub image_training: Arc<dyn Training>,
    /// Serves process folders.
    pub process_serving: Arc<dyn Serving>,
    /// Serves images.
    pub image_serving: Arc<dyn Serving>,
    pub images: Arc<dyn Images>,
    pub containers: Arc<dyn Containers>,
    /// Trains `backend = "sagemaker"` stages; `None` in a build without SageMaker.
    pub sagemaker_training: Option<Arc<dyn crate::ManagedTraining>>,
    /// Hosts `backend = "sagemaker"` deploy stages; `None` in a build without SageMaker.
    pub sagemaker_hosting: Option<Arc<dyn crate::ManagedHosting>>,
    /// Takes the images of `registry = "ecr"` build stages; `None` in a build without AWS.
    pub ecr: Option<Arc<dyn crate::ManagedRegistry>>,
}

impl Backends {
    /// This machine: the built-in algorithms and process folders as children, images through the Docker Engine.
    pub fn local() -> Backends {
        Backends {
            child_training: Arc::new(ChildTraining),
            image_training: Arc::new(DockerTraining),
            process_serving: Arc::new(ProcessServing),
            image_serving: Arc::new(DockerServing),
            images: Arc::new(DockerImages),
            containers: Arc::new(DockerContainers),
            sagemaker_training: None,
            sagemaker_hosting: None,
            ecr: None,
        }
    }

    /// What trains `algorithm`.
    pub(crate) fn training(&self, algorithm: &Algorithm) -> Arc<dyn Training> {
        match algorithm {
            Algorithm::Builtin(_) | Algorithm::Process(_) => self.child_training.clone(),
            Algorithm::Image(_) => self.image_training.clone(),
        }
    }

    /// What serves `algorithm`; a built-in model is answered in-process, not served.
    pub(crate) fn serving(&self, algorithm: &Algorithm) -> Result<&dyn Serving, runtime::Error> {
        match algorithm {
            Algorithm::Process(_) => Ok(self.process_serving.as_ref()),
            Algorithm::Image(_) => Ok(self.image_serving.as_ref()),
            Algorithm::Builtin(name) => {
                Err(runtime::Error::Docker(format!("the built-in {name} is answered in-process, not served")))
            }
        }
    }
}

/// Training jobs as children of this process, each in its own namespaces.
struct ChildTraining;

impl Training for ChildTraining {
    fn run<'a>(
        &'a self,
        job: &'a TrainingJob,
        opt_ml: &'a OptMl,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<Outcome, runtime::Error>> {
        Box::pin(async move { runtime::training::run_child(job, opt_ml, &mut { log }, cancel).await })
    }
}

/// Training jobs as containers of the Docker Engine.
struct DockerTraining;

impl Training for DockerTraining {
    fn run<'a>(
        &'a self,
        job: &'a TrainingJob,
        opt_ml: &'a OptMl,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
        cancel: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<Outcome, runtime::Error>> {
        Box::pin(async move {
            let Algorithm::Image(image) = &job.algorithm else {
                return Err(runtime::Error::Docker(format!("{} is not an image", job.algorithm.reference())));
            };
            runtime::training::run_container(job, image, opt_ml, &mut { log }, cancel).await
        })
    }
}

/// Process folders' `serve` in their sandboxes, each reached in its own network namespace.
struct ProcessServing;

impl Serving for ProcessServing {
    fn start<'a>(&'a self, r: ServeRequest<'a>) -> BoxFuture<'a, Result<Served, runtime::Error>> {
        Box::pin(async move {
            let Algorithm::Process(program) = r.algorithm else {
                return Err(runtime::Error::Docker(format!("{} is not a process folder", r.algorithm.reference())));
            };
            let server = ProcessInstance::start(
                r.sagebrush_exe,
                Path::new(&r.labels.home),
                program,
                r.opt_ml,
                r.log,
                r.startup_timeout,
            )
            .await?;
            let dialer = server.dialer();
            let dial: Dial = Arc::new(move || {
                let dialer = dialer.clone();
                Box::pin(async move { dialer.connect().await })
            });
            let upstream = Upstream::dialed(server.label.clone(), runtime::hosting::SERVE_PORT, dial);
            Ok(Served { upstream, owner: Box::new(server) })
        })
    }
}

/// Images' `serve` as containers of the Docker Engine.
struct DockerServing;

impl Serving for DockerServing {
    fn start<'a>(&'a self, r: ServeRequest<'a>) -> BoxFuture<'a, Result<Served, runtime::Error>> {
        Box::pin(async move {
            let Algorithm::Image(image) = r.algorithm else {
                return Err(runtime::Error::Docker(format!("{} is not an image", r.algorithm.reference())));
            };
            let server =
                ContainerInstance::start(image, r.opt_ml, r.log, r.startup_timeout, r.labels, r.limits, r.name_hint)
                    .await?;
            Ok(Served { upstream: container_upstream(&server), owner: Box::new(server) })
        })
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

/// Images through the Docker Engine.
struct DockerImages;

impl Images for DockerImages {
    fn check(&self) -> BoxFuture<'_, Result<(), runtime::Error>> {
        Box::pin(docker::check_engine())
    }

    fn build<'a>(
        &'a self,
        dir: &'a Path,
        tag: &'a str,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), runtime::Error>> {
        // `&mut dyn` is a sized writer.
        Box::pin(async move { docker::build(dir, tag, &mut { log }).await })
    }

    fn push<'a>(
        &'a self,
        repository: &'a str,
        tag: &'a str,
        login: Option<&'a crate::RegistryLogin>,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<(), runtime::Error>> {
        let login = login.map(|l| docker::Login { server: &l.push_to, username: &l.username, password: &l.password });
        Box::pin(async move { docker::push(repository, tag, login, &mut { log }).await })
    }

    fn inspect<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(u64, Vec<String>), runtime::Error>> {
        Box::pin(docker::inspect_image(image))
    }

    fn sbom<'a>(&'a self, image: &'a str, labels: &'a Labels) -> BoxFuture<'a, Result<Sbom, runtime::Error>> {
        Box::pin(Sbom::of_image(image, labels))
    }

    fn remove<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), runtime::Error>> {
        Box::pin(docker::remove_image(image))
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

    use runtime::training::End;
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
            log: &'a mut (dyn AsyncWrite + Unpin + Send),
            mut cancel: watch::Receiver<bool>,
        ) -> BoxFuture<'a, Result<Outcome, runtime::Error>> {
            self.started.lock().unwrap().push(job.name.clone());
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Job::Completes);
            Box::pin(async move {
                let _ = log.write_all(format!("fake job {} {next:?}\n", job.name).as_bytes()).await;
                let outcome = |end, reason: Option<&str>| Outcome {
                    end,
                    failure_reason: reason.map(str::to_owned),
                    metrics: [("train:accuracy".to_owned(), 0.97)].into(),
                };
                Ok(match next {
                    Job::Completes => {
                        let model = opt_ml.model_dir().join("model.json");
                        std::fs::write(&model, "{}")
                            .map_err(|e| runtime::Error::Io { path: model.display().to_string(), source: e })?;
                        outcome(End::Completed, None)
                    }
                    Job::Fails => outcome(End::Failed, Some("AlgorithmError: scripted to fail")),
                    Job::Hangs => {
                        let _ = cancel.wait_for(|c| *c).await;
                        outcome(End::Stopped, Some("stopped"))
                    }
                })
            })
        }
    }

    /// The backends of a test: `training` for every algorithm, and nothing else that runs anything.
    pub fn backends(training: Arc<FakeTraining>) -> Backends {
        Backends {
            child_training: training.clone(),
            image_training: training,
            process_serving: Arc::new(NoServing),
            image_serving: Arc::new(NoServing),
            images: Arc::new(NoImages),
            containers: Arc::new(NoContainers),
            sagemaker_training: None,
            sagemaker_hosting: None,
            ecr: None,
        }
    }

    fn refused<T>(what: &str) -> BoxFuture<'static, Result<T, runtime::Error>> {
        let message = format!("the fake backend has no {what}");
        Box::pin(async move { Err(runtime::Error::Docker(message)) })
    }

    /// Serves nothing: a test of the stage loop deploys only built-in models, answered in-process.
    pub struct NoServing;

    impl Serving for NoServing {
        fn start<'a>(&'a self, _: ServeRequest<'a>) -> BoxFuture<'a, Result<Served, runtime::Error>> {
            refused("model servers")
        }
    }

    /// Builds nothing.
    pub struct NoImages;

    impl Images for NoImages {
        fn check(&self) -> BoxFuture<'_, Result<(), runtime::Error>> {
            refused("images")
        }

        fn build<'a>(
            &'a self,
            _: &'a Path,
            _: &'a str,
            _: &'a mut (dyn AsyncWrite + Unpin + Send),
        ) -> BoxFuture<'a, Result<(), runtime::Error>> {
            refused("images")
        }

        fn push<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: Option<&'a crate::RegistryLogin>,
            _: &'a mut (dyn AsyncWrite + Unpin + Send),
        ) -> BoxFuture<'a, Result<(), runtime::Error>> {
            refused("images")
        }

        fn inspect<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(u64, Vec<String>), runtime::Error>> {
            refused("images")
        }

        fn sbom<'a>(&'a self, _: &'a str, _: &'a Labels) -> BoxFuture<'a, Result<Sbom, runtime::Error>> {
            refused("images")
        }

        fn remove<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), runtime::Error>> {
            Box::pin(async { Ok(()) })
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
