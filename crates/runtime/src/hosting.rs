//! Hosting instances: a folder's `serve` on a free loopback port, or an image's `serve` container; healthy once `/ping` answers 200.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::opt_ml::OptMl;
use crate::{Error, docker, io_error, process};

/// A running `serve` process with its own `/opt/ml/model`.
#[derive(Debug)]
pub struct ProcessInstance {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

impl ProcessInstance {
    /// Starts `<algorithm_dir>/serve` with `opt_ml` on `/opt/ml`, and waits until `/ping` answers 200.
    ///
    /// The log (stdout and stderr) goes to `log_file`. Fails with the log's tail if the
    /// process exits or `/ping` does not answer within `ping_deadline`.
    pub async fn start(
        algorithm_dir: &Path,
        opt_ml: &OptMl,
        log_file: &Path,
        ping_deadline: Duration,
    ) -> Result<ProcessInstance, Error> {
        let port = free_port()?;
        let serve = algorithm_dir.join("serve");
        let log = std::os::unix::fs::OpenOptionsExt::mode(std::fs::OpenOptions::new().create(true).append(true), 0o600)
            .open(log_file)
            .map_err(io_error(log_file))?;
        let log_err = log.try_clone().map_err(io_error(log_file))?;
        let mut command = process::isolated(&opt_ml.root, &serve, &[])?;
        command.env("SAGEMAKER_BIND_TO_PORT", port.to_string()).stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = process::spawn(command, &serve.display().to_string())?;
        let mut instance = ProcessInstance { child, base_url: format!("http://127.0.0.1:{port}") };
        let child = &mut instance.child;
        let exited = || child.try_wait().ok().flatten().map(|status| format!("exited ({status})"));
        if let Err(e) = wait_for_ping(&instance.base_url, "serve", log_file, ping_deadline, exited).await {
            process::stop(&mut instance.child, Duration::from_secs(2)).await;
            return Err(e);
        }
        Ok(instance)
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
        wait_for_ping(&self.base_url, &what, log_file, ping_deadline, || {
            follower.is_finished().then(|| "stopped".to_owned())
        })
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

/// Polls `GET /ping` until it answers 200; fails when `exited` reports the server gone, or past `deadline`.
async fn wait_for_ping(
    base_url: &str,
    what: &str,
    log_file: &Path,
    deadline: Duration,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| Error::NotHealthy(e.to_string()))?;
    let url = format!("{base_url}/ping");
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(how) = exited() {
            return Err(Error::NotHealthy(format!(
                "{what} {how} before answering /ping; its log ends with:\n{}",
                log_tail(log_file)
            )));
        }
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
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

fn free_port() -> Result<u16, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_error(Path::new("127.0.0.1:0")))?;
    let port = listener.local_addr().map_err(io_error(Path::new("127.0.0.1:0")))?.port();
    Ok(port)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
