//! Hosting instances for process-runtime algorithms: `serve` on a free loopback port, healthy once `/ping` answers 200.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::opt_ml::OptMl;
use crate::{Error, io_error, process};

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
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_file).map_err(io_error(log_file))?;
        let log_err = log.try_clone().map_err(io_error(log_file))?;
        let mut command = process::isolated(&opt_ml.root, &serve, &[])?;
        command.env("SAGEMAKER_BIND_TO_PORT", port.to_string()).stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = process::spawn(command, &serve.display().to_string())?;
        let mut instance = ProcessInstance { child, base_url: format!("http://127.0.0.1:{port}") };
        instance.wait_healthy(log_file, ping_deadline).await?;
        Ok(instance)
    }

    async fn wait_healthy(&mut self, log_file: &Path, deadline: Duration) -> Result<(), Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::NotHealthy(e.to_string()))?;
        let url = format!("{}/ping", self.base_url);
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::NotHealthy(format!(
                    "serve exited with {status} before answering /ping; its log ends with:\n{}",
                    log_tail(log_file)
                )));
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > deadline {
                process::stop(&mut self.child, Duration::from_secs(2)).await;
                return Err(Error::NotHealthy(format!(
                    "serve did not answer GET /ping with 200 within {deadline:?}; its log ends with:\n{}",
                    log_tail(log_file)
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
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
