//! SageMaker's multi-model container API, as a client: a model's archive is unpacked under the
//! container's `/opt/ml/models/<name>`, then `POST /models` loads it and `DELETE /models/<name>`
//! unloads it.

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// How long a container gets to load one model.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Loads and unloads the models of one multi-model container.
#[derive(Clone)]
pub struct MultiModelClient {
    base_url: String,
    /// The host folder the container sees as `/opt/ml/models`.
    models_dir: PathBuf,
    client: reqwest::Client,
}

impl MultiModelClient {
    /// A client of the container at `base_url`, whose `/opt/ml/models` is `models_dir` on this host.
    pub fn new(base_url: &str, models_dir: PathBuf) -> Result<MultiModelClient, Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(LOAD_TIMEOUT)
            .build()
            .map_err(|e| Error::NotHealthy(e.to_string()))?;
        Ok(MultiModelClient { base_url: base_url.trim_end_matches('/').to_owned(), models_dir, client })
    }

    /// Unpacks `archive` (a `model.tar.gz`) as model `name` and has the container load it.
    pub async fn load(&self, name: &str, archive: Vec<u8>) -> Result<(), Error> {
        let refused = |why: String| Error::ModelNotLoaded { model: name.to_owned(), why };
        let into = self.models_dir.join(name);
        tokio::task::spawn_blocking(move || crate::archive::unpack(&archive, &into))
            .await
            .map_err(|e| refused(e.to_string()))?
            .map_err(|e| refused(e.to_string()))?;
        let request = serde_json::json!({ "model_name": name, "url": format!("/opt/ml/models/{name}") });
        match self.client.post(format!("{}/models", self.base_url)).json(&request).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(refused(r.status().to_string())),
            Err(e) => Err(refused(e.to_string())),
        }
    }

    /// Has the container unload model `name` and removes its files; best effort, as the model is
    /// gone from the cache either way.
    pub async fn unload(&self, name: &str) {
        let _ = self.client.delete(format!("{}/models/{name}", self.base_url)).send().await;
        let _ = tokio::fs::remove_dir_all(self.models_dir.join(name)).await;
    }
}
