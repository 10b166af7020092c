//! The server crate's errors: [`Error`] for starting and serving, [`ServiceError`] for an
//! operation of the service layer, which the API sends as `{"error": {"code", "message", "hint"}}`.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What can stop a server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration asks for something refused (a listener off loopback, a second server).
    #[error("{0}")]
    Refused(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {listen}: {source}; pass --listen 127.0.0.1:<another port> or stop what is using it")]
    Listen { listen: SocketAddr, source: std::io::Error },
    /// A file of the home could not be written.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The engine could not open the home or add a project.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The service could not start (its tokens could not be read).
    #[error("{}", .0.message)]
    Service(#[from] ServiceError),
}

/// Why an operation did not succeed: an HTTP status, a stable code, a message and a hint.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub status: StatusCode,
    /// Stable, for scripts: `invalid_name`, `not_found`, ...
    pub code: Cow<'static, str>,
    pub message: String,
    pub hint: Option<String>,
    /// Fields sent next to `error` (a failed deploy's events); boxed, as errors are returned
    /// everywhere and the map is large when serde_json keeps insertion order (the `aws` build).
    pub extra: Box<serde_json::Map<String, serde_json::Value>>,
}

impl ServiceError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ServiceError {
        ServiceError { status, code: code.into(), message: message.into(), hint: None, extra: Box::default() }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ServiceError {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn with(mut self, key: &str, value: serde_json::Value) -> ServiceError {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// A bad name in the URL or a body: the caller's mistake, and never a path.
    pub(crate) fn invalid_name(what: &str, error: &names::InvalidName) -> ServiceError {
        ServiceError::new(StatusCode::BAD_REQUEST, "invalid_name", format!("{what}: {error}"))
    }

    /// The message and its hint on one line, for the protocols whose errors carry one message
    /// (SageMaker's, S3's).
    pub(crate) fn one_line(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{}; {hint}", self.message),
            None => self.message.clone(),
        }
    }

    /// Whether it is a mistake in what was asked (the CLI's exit code 2), rather than an operation
    /// that could not be done (a missing run, a rolled-back deploy: 1).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self.status.as_u16(), 400 | 408 | 413 | 421) || matches!(&*self.code, "conflict" | "run_ended")
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let mut body = *self.extra;
        body.insert(
            "error".to_owned(),
            serde_json::json!({ "code": self.code, "message": self.message, "hint": self.hint }),
        );
        (self.status, Json(serde_json::Value::Object(body))).into_response()
    }
}

impl From<engine::Error> for ServiceError {
    fn from(e: engine::Error) -> ServiceError {
        let (status, code) = match &e {
            engine::Error::Pipeline(_) => (StatusCode::BAD_REQUEST, "invalid_pipeline"),
            engine::Error::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            engine::Error::UnknownProject(_) => (StatusCode::NOT_FOUND, "unknown_project"),
            engine::Error::Store(store::Error::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            engine::Error::Store(store::Error::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            engine::Error::Store(store::Error::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid_request"),
            engine::Error::Store(store::Error::Integrity(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "artifact_changed"),
            engine::Error::RolledBack(_) => (StatusCode::CONFLICT, "rolled_back"),
            engine::Error::Runtime(runtime::Error::UnknownInstanceType(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let parameter = match &e {
            engine::Error::Pipeline(pipeline::Error::Parameter { parameter: Some(parameter), .. }) => {
                Some(parameter.clone())
            }
            _ => None,
        };
        let error = ServiceError::new(status, code, e.to_string());
        // Which parameter a bad value belongs to, so a form shows the message next to its field.
        match parameter {
            Some(parameter) => error.with("parameter", parameter.into()),
            None => error,
        }
    }
}

impl From<store::Error> for ServiceError {
    fn from(e: store::Error) -> ServiceError {
        engine::Error::from(e).into()
    }
}
