//! The CLI's side of the HTTP API: requests to the running server, its answers as the service
//! layer's types and its errors as the same [`ServiceError`]s, so a command answers alike through
//! a server and in-process.

use std::sync::OnceLock;
use std::time::Duration;

use engine::Home;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use server::ServiceError;

/// `--server` and `--token`, set once from the command line.
#[derive(Default)]
struct Remote {
    server: Option<String>,
    token: Option<String>,
}

static REMOTE: OnceLock<Remote> = OnceLock::new();

/// Which server to call (instead of the home's own) and the token to present.
pub fn configure(server: Option<String>, token: Option<String>) {
    let _ = REMOTE.set(Remote { server, token });
}

/// The server to go through: `--server`, or the one running for this home; `None` runs in-process.
pub async fn connect(home: &Home) -> anyhow::Result<Option<Client>> {
    let remote = REMOTE.get_or_init(Remote::default);
    let url = match &remote.server {
        Some(url) => Some(url.clone()),
        None => server::running(home).await,
    };
    url.map(|url| Client::new(&url, remote.token.as_deref())).transpose()
}

/// A client of the server at one base URL.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> anyhow::Result<Client> {
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                anyhow::anyhow!("the token holds characters no header may carry; check SAGEBRUSH_TOKEN")
            })?;
            // Kept out of reqwest's debug output.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()?;
        Ok(Client { base: base.trim_end_matches('/').to_owned(), http })
    }

    /// A request to a path outside the API (an endpoint's invocations), with the token.
    pub fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl serde::Serialize) -> anyhow::Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &impl serde::Serialize) -> anyhow::Result<T> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send::<serde_json::Value>(self.http.delete(self.url(path))).await.map(drop)
    }

    /// The server's stream of a project's events from now on (server-sent events).
    pub async fn event_stream(&self, project: &names::Name) -> anyhow::Result<reqwest::Response> {
        self.open_stream(&format!("/api/v1/events?project={project}")).await
    }

    /// The server-sent events at `path` (under the server's base), event by event.
    pub async fn event_stream_at(&self, path: &str) -> anyhow::Result<EventStream> {
        let response = self.open_stream(path).await?;
        Ok(EventStream { response, buffer: Vec::new(), server: self.base.clone() })
    }

    async fn open_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| gone(&self.base, &e))?;
        self.checked(response).await
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// The answer as `T` (`null` for an empty one), or the server's error as the [`ServiceError`] it sent.
    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let response = request.send().await.map_err(|e| gone(&self.base, &e))?;
        let bytes = self.checked(response).await?.bytes().await.map_err(|e| gone(&self.base, &e))?;
        let answer = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok(serde_json::from_value(answer)?)
    }

    /// A successful answer as it is, or the error it carries as the [`ServiceError`] the server sent.
    async fn checked(&self, response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.map_err(|e| gone(&self.base, &e))?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let error = &answer["error"];
        let message = error["message"].as_str().map_or_else(|| format!("the server answered {status}"), str::to_owned);
        let code = error["code"].as_str().unwrap_or("error").to_owned();
        let status = axum::http::StatusCode::from_u16(status.as_u16()).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
        let mut error_out = ServiceError::new(status, code, message);
        if let Some(hint) = error["hint"].as_str() {
            error_out = error_out.hint(hint);
        }
        if let serde_json::Value::Object(mut fields) = answer {
            fields.remove("error");
            error_out.extra = Box::new(fields);
        }
        Err(error_out.into())
    }
}

/// Server-sent events as `(event, data)`, read as they arrive.
pub struct EventStream {
    response: reqwest::Response,
    /// Bytes, so a character split between two chunks is whole again before it is decoded.
    buffer: Vec<u8>,
    server: String,
}

impl EventStream {
    /// The next event; `None` when the server ends the stream. Comments (keep-alives) are skipped.
    pub async fn next(&mut self) -> anyhow::Result<Option<(String, String)>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let (mut event, mut data) = (String::from("message"), Vec::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if !data.is_empty() {
                    return Ok(Some((event, data.join("\n"))));
                }
                continue;
            }
            match self.response.chunk().await.map_err(|e| gone(&self.server, &e))? {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }
}

/// A server that no longer answers: say so, and what to do.
pub fn gone(base: &str, error: &reqwest::Error) -> anyhow::Error {
    gone_quietly(base, &error.to_string())
}

/// [`gone`], for a server that went without an error to quote (a stream that just ended).
pub fn gone_quietly(base: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the sagebrush server at {base} is gone ({why}); start it again with `sagebrush server` \
         (runs it was executing are marked interrupted when it starts)"
    )
}
