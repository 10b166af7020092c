//! Hosting instances: a folder's `serve` in its sandbox (port 8080 in a network namespace of its
//! own), or an image's `serve` container; healthy once `/ping` answers 200.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::process::Child;

use crate::opt_ml::OptMl;
use crate::process::{self, Output};
use crate::sandbox::{self, Program, Spec};
use crate::{Error, docker, io_error, log_tail};

/// The port a model server listens on inside its sandbox, as in a SageMaker container.
pub const SERVE_PORT: u16 = 8080;

/// A running `serve` with its own `/opt/ml/model`, listening on [`SERVE_PORT`] in its own network namespace.
#[derive(Debug)]
pub struct ProcessInstance {
    child: Child,
    dialer: Arc<Dialer>,
    /// `netns:<pid>/127.0.0.1:8080`: whose network namespace it listens in, for people (`nsenter -t <pid> -n`).
    pub label: String,
}

impl ProcessInstance {
    /// Starts `serve` from `program` in a sandbox with `opt_ml` on `/opt/ml`, and waits until `/ping` answers 200.
    ///
    /// `exe` is the sagebrush binary (it sets the sandbox up); `home` is hidden from the server.
    /// The log (stdout and stderr) goes to `log_file`. Fails with the log's tail if the server
    /// exits or `/ping` does not answer within `ping_deadline`.
    pub async fn start(
        exe: &Path,
        home: &Path,
        program: &Program,
        opt_ml: &OptMl,
        log_file: &Path,
        ping_deadline: Duration,
    ) -> Result<ProcessInstance, Error> {
        let spec = Spec {
            opt_ml: opt_ml.root.clone(),
            program: program.clone(),
            serve_port: Some(SERVE_PORT),
            hidden: vec![home.to_path_buf()],
            command: vec!["serve".into()],
        };
        let sandboxed = process::sandboxed(exe, &spec, &[], Output::File(log_file)).await?;
        let pid = sandboxed.child.id().unwrap_or_default();
        let dialer = Arc::new(Dialer::new(sandboxed.control));
        let mut instance =
            ProcessInstance { child: sandboxed.child, dialer, label: format!("netns:{pid}/127.0.0.1:{SERVE_PORT}") };
        let child = &mut instance.child;
        let exited = || child.try_wait().ok().flatten().map(|status| format!("exited ({status})"));
        let dialer = instance.dialer.clone();
        let connect = move || {
            let dialer = dialer.clone();
            async move { dialer.connect().await }
        };
        let what = format!("{} serve", program.dir.display());
        if let Err(e) = wait_for_ping(connect, &what, log_file, ping_deadline, exited).await {
            process::stop(&mut instance.child, Duration::from_secs(2)).await;
            return Err(e);
        }
        Ok(instance)
    }

    /// How the router reaches the server: connections made inside its network namespace.
    pub fn dialer(&self) -> Arc<Dialer> {
        self.dialer.clone()
    }

    /// Stops the process tree: SIGTERM, then SIGKILL after a grace period.
    pub async fn stop(mut self) {
        process::stop(&mut self.child, Duration::from_secs(5)).await;
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        // An instance dropped without `stop` (a replaced endpoint, a panic) must not leave a server behind.
        if let Some(pid) = self.child.id() {
            process::kill_group_now(pid);
        }
    }
}

/// Connections to a sandboxed server, each made inside its network namespace by the sandbox
/// and handed over its control socket: an ordinary TCP socket from then on, with no hop between.
#[derive(Debug)]
pub struct Dialer {
    /// One exchange at a time, each answer read right after its request; `None` once an answer
    /// did not come, since a late one would answer the next request.
    control: Arc<tokio::sync::Mutex<Option<tokio::net::UnixStream>>>,
}

/// How long the sandbox has to answer a request (it gives up connecting inside after half a second).
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

impl Dialer {
    fn new(control: tokio::net::UnixStream) -> Dialer {
        Dialer { control: Arc::new(tokio::sync::Mutex::new(Some(control))) }
    }

    /// A new connection to the server, or why there is none (refused while it starts; the sandbox gone).
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        let control = self.control.clone();
        // On a task of its own, so an exchange runs to its end even when the caller stops waiting.
        let exchange = tokio::spawn(async move {
            let mut held = control.lock_owned().await;
            let Some(socket) = held.as_mut() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the instance's sandbox stopped answering",
                ));
            };
            match tokio::time::timeout(ANSWER_DEADLINE, exchange(socket)).await {
                Ok(answer) => answer,
                Err(_) => {
                    *held = None;
                    Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the instance's sandbox did not answer"))
                }
            }
        });
        let received = exchange.await.map_err(std::io::Error::other)??;
        let Some(socket) = received else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("nothing listens on port {SERVE_PORT} in the instance's network namespace"),
            ));
        };
        let stream = std::net::TcpStream::from(socket);
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        TcpStream::from_std(stream)
    }
}

/// One request on the control socket and its answer.
async fn exchange(control: &mut tokio::net::UnixStream) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    control.write_all(&[sandbox::CONNECT]).await?;
    loop {
        control.readable().await?;
        match control.try_io(tokio::io::Interest::READABLE, || sandbox::receive_connection(&*control)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            answer => return answer,
        }
    }
}

/// A `<image> serve` container with the model on `/opt/ml/model`, port 8080 published on loopback.
#[derive(Debug)]
pub struct ContainerInstance {
    name: String,
    /// Copies the container's log into the endpoint's log file; it ends when the container stops.
    follower: tokio::task::JoinHandle<()>,
    /// `http://127.0.0.1:<published port>`.
    pub base_url: String,
    /// `<ip>:8080` on the container's network, if this machine reaches it there (a Linux host does;
    /// Docker Desktop and rootless Docker do not). It skips Docker's userland proxy.
    pub direct_address: Option<String>,
}

impl ContainerInstance {
    /// Starts the container and waits until `/ping` answers 200, or fails with its log's tail.
    pub async fn start(
        image: &str,
        opt_ml: &OptMl,
        log_file: &Path,
        ping_deadline: Duration,
        labels: &docker::Labels,
        limits: docker::Limits,
        name_hint: &str,
    ) -> Result<ContainerInstance, Error> {
        docker::ensure_image(image).await?;
        let name = docker::unique_name(name_hint);
        let spec = docker::ContainerSpec {
            name: &name,
            image,
            command: "serve",
            labels,
            opt_ml: &opt_ml.root,
            limits,
            env: &[],
            publish: true,
        };
        docker::start(&spec).await?;
        let mut instance =
            ContainerInstance { name, follower: tokio::spawn(async {}), base_url: String::new(), direct_address: None };
        match instance.wait_until_serving(image, log_file, ping_deadline).await {
            Ok(()) => Ok(instance),
            Err(e) => {
                // Removed before the error is reported, so a failed deploy leaves nothing running.
                instance.follower.abort();
                docker::remove(&instance.name).await;
                Err(e)
            }
        }
    }

    async fn wait_until_serving(&mut self, image: &str, log_file: &Path, ping_deadline: Duration) -> Result<(), Error> {
        let (port, direct) = docker::serving_addresses(&self.name).await?;
        self.base_url = format!("http://127.0.0.1:{port}");
        let mut log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log_file)
            .await
            .map_err(io_error(log_file))?;
        let mut output = Box::pin(docker::follow_logs(&self.name)?);
        self.follower = tokio::spawn(async move {
            use futures::StreamExt;
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = output.next().await {
                let _ = log.write_all(&chunk).await;
            }
        });
        let what = format!("{image} serve");
        let follower = &self.follower;
        let connect = move || TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port));
        wait_for_ping(connect, &what, log_file, ping_deadline, || follower.is_finished().then(|| "stopped".to_owned()))
            .await?;
        if let Some(address) = direct {
            let connect = tokio::net::TcpStream::connect(address.as_str());
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(250), connect).await {
                self.direct_address = Some(address);
            }
        }
        Ok(())
    }

    /// The container's name, unique on this Engine.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the container as SageMaker does (SIGTERM, then SIGKILL after a grace period) and removes it.
    pub async fn stop(self) {
        docker::stop(&self.name, Duration::from_secs(5)).await;
        docker::remove(&self.name).await;
    }
}

impl Drop for ContainerInstance {
    fn drop(&mut self) {
        self.follower.abort();
        docker::remove_detached(&self.name);
    }
}

/// Polls `GET /ping` on connections from `connect` until it answers 200; fails when `exited`
/// reports the server gone, or past `deadline`.
async fn wait_for_ping<F>(
    connect: impl Fn() -> F,
    what: &str,
    log_file: &Path,
    deadline: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), Error>
where
    F: Future<Output = std::io::Result<TcpStream>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(how) = exited() {
            return Err(Error::NotHealthy(format!(
                "{what} {how} before answering /ping; its log ends with:\n{}",
                log_tail(log_file)
            )));
        }
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(1), connect()).await
            && ping(stream).await
        {
            return Ok(());
        }
        if started.elapsed() > deadline {
            return Err(Error::NotHealthy(format!(
                "{what} did not answer GET /ping with 200 within {deadline:?}; its log ends with:\n{}",
                log_tail(log_file)
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// `GET /ping` on a connected socket: whether it answered 200 within two seconds.
async fn ping(stream: TcpStream) -> bool {
    let asked = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/ping")
            .header(hyper::header::HOST, format!("127.0.0.1:{SERVE_PORT}"))
            .body(Empty::<Bytes>::new())
            .ok()?;
        sender.send_request(request).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), asked).await, Ok(Some(response)) if response.status().is_success())
}
