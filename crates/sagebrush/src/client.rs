//! The CLI's side of the HTTP API: requests to the running server, and its errors as exit codes.

use std::time::Duration;

use crate::exit::Invalid;

/// A client of the server at one base URL.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Client { base: base.trim_end_matches('/').to_owned(), http })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The answer's JSON (`null` for an empty one). A 404 is an operation that failed (exit 1),
    /// any other 4xx the caller's mistake (exit 2), as the same error is in-process.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
        let response = request.send().await.map_err(|e| gone(&self.base, &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| gone(&self.base, &e))?;
        let answer: serde_json::Value =
            if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap_or_default() };
        if status.is_success() {
            return Ok(answer);
        }
        let error = &answer["error"];
        let mut message =
            error["message"].as_str().map_or_else(|| format!("the server answered {status}"), str::to_owned);
        if let Some(hint) = error["hint"].as_str() {
            message.push_str(&format!("\n  hint: {hint}"));
        }
        if status.is_client_error() && status != reqwest::StatusCode::NOT_FOUND {
            anyhow::bail!(Invalid(message));
        }
        anyhow::bail!("{message}")
    }
}

/// A server that no longer answers: say so, and what to do.
pub fn gone(base: &str, error: &reqwest::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "the sagebrush server at {base} is gone ({error}); start it again with `sagebrush server` \
         (runs it was executing are marked interrupted when it starts)"
    )
}
