//! The local image registry: the Docker distribution registry (Debian's `docker-registry`) on loopback, started on demand.
//!
//! It stands in for ECR: build stages push to it and containers run from it. It runs as long as
//! the sagebrush process that started it (its images stay on disk under `<home>/registry/data`);
//! `registry.json` in the home says where it listens, so a process finding it answering uses it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::error::io_error;
use crate::{Engine, Error, which};

const PROGRAMS: [&str; 2] = ["docker-registry", "registry"];

/// The registry program on PATH, if there is one.
pub(crate) fn program() -> Option<std::path::PathBuf> {
    PROGRAMS.iter().find_map(|p| which(p))
}

impl Engine {
    /// The local registry's `host:port`, starting it if it is not answering.
    pub async fn local_registry(&self) -> Result<String, Error> {
        let dir = self.home().root().join("registry");
        let file = dir.join("registry.json");
        if let Some(address) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["address"].as_str().map(str::to_owned))
            && answers(&address).await
        {
            return Ok(address);
        }
        let program = program().ok_or_else(|| {
            Error::Invalid(
                "no local registry: install Debian's docker-registry (apt-get install docker-registry), \
                 or set `registry` on the build stage"
                    .to_owned(),
            )
        })?;
        std::fs::create_dir_all(dir.join("data")).map_err(io_error(&dir))?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(io_error(&dir))?.port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        let text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            dir.join("data").display()
        );
        std::fs::write(&config, text).map_err(io_error(&config))?;
        let log = std::fs::File::create(dir.join("registry.log")).map_err(io_error(&dir))?;
        let log_err = log.try_clone().map_err(io_error(&dir))?;
        // Stops with this process: killed at shutdown, or by the parent-death signal if this process is killed.
        let mut command = runtime::process::guarded(&program);
        command.arg("serve").arg(&config).stdin(Stdio::null()).stdout(log).stderr(log_err).kill_on_drop(true);
        let child = command.spawn().map_err(io_error(&program))?;
        let pid = child.id();
        *self.inner.registry.lock().await = Some(child);
        let started = Instant::now();
        while !answers(&address).await {
            if started.elapsed() > Duration::from_secs(15) {
                return Err(Error::Invalid(format!(
                    "the local registry ({}) did not answer on {address}; see {}",
                    program.display(),
                    dir.join("registry.log").display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let record = serde_json::json!({ "address": address, "pid": pid });
        std::fs::write(&file, record.to_string()).map_err(io_error(&file))?;
        tracing::info!("started the local registry on {address}");
        Ok(address)
    }
}

impl Engine {
    /// Deletes `name@digest` from the local registry (its blobs stay until the registry's own
    /// `garbage-collect`); one already gone is not an error.
    pub(crate) async fn delete_from_local_registry(&self, name: &str, digest: &str) -> Result<(), Error> {
        let address = self.local_registry().await?;
        let url = format!("http://{address}/v2/{name}/manifests/{digest}");
        let response = reqwest::Client::new()
            .delete(&url)
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("DELETE {url}: {e}")))?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            status => Err(Error::Invalid(format!("DELETE {url}: {status}"))),
        }
    }

    /// Stops the local registry if this process started it.
    pub(crate) async fn stop_registry(&self) {
        if let Some(mut child) = self.inner.registry.lock().await.take() {
            let _ = child.kill().await;
            let _ = std::fs::remove_file(self.home().root().join("registry").join("registry.json"));
        }
    }
}

/// Whether a registry answers the Docker Registry HTTP API's version check.
async fn answers(address: &str) -> bool {
    let Ok(client) = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build() else {
        return false;
    };
    client.get(format!("http://{address}/v2/")).send().await.is_ok_and(|r| r.status().is_success())
}
