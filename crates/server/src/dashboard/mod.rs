//! The dashboard: server-rendered pages (maud) over the same [`Service`] the API calls, with a
//! small vendored script that follows the server's event streams. No page does anything the
//! API cannot: every form posts to a handler that calls one service operation.
//!
//! Every request of a browser belongs to a session (`session.rs`); every form carries the
//! session's CSRF token and is refused without it, and a caller whose role is short of an action
//! sees no control for it and is refused it anyway. Every form post goes into the audit.

// A refusal is the page sent back, made once per request: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod audit;
mod endpoints;
mod layout;
mod models;
mod projects;
mod runs;
mod session;
pub(crate) mod traffic;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use store::Role;

use crate::auth::Caller;
use crate::{Service, ServiceError};
use layout::{Live, Section, page};
pub(crate) use session::Visit;
use session::{Sessions, set_cookie};

/// The form field every post carries.
const CSRF_FIELD: &str = "_csrf";
/// Versioned, so a new binary's pages never use an old cached file.
const CSS_URL: &str = concat!("/assets/dashboard-", env!("CARGO_PKG_VERSION"), ".css");
const JS_URL: &str = concat!("/assets/dashboard-", env!("CARGO_PKG_VERSION"), ".js");
const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// What a page handler answers: the page, or the page saying why not (both are responses, so
/// a handler can `?` its refusals).
type Answer = Result<Response, Response>;

/// What every page handler is given.
#[derive(Clone)]
pub(crate) struct Dashboard {
    service: Service,
    sessions: Arc<Sessions>,
    traffic: Arc<traffic::History>,
}

/// The dashboard's routes, to be merged with the API's (they share the main runtime).
pub(crate) fn routes(service: Service, traffic: Arc<traffic::History>) -> axum::Router {
    let dashboard = Dashboard { service, sessions: Arc::default(), traffic };
    axum::Router::new()
        .route("/", get(projects::index))
        .route("/projects/{project}", get(projects::project))
        .route("/projects/{project}/runs", post(projects::submit))
        .route("/runs/{project}/{number}", get(runs::detail))
        .route("/runs/{project}/{number}/{action}", post(runs::act))
        .route("/models", get(models::index))
        .route("/endpoints", get(endpoints::index))
        .route("/endpoints/{endpoint}", get(endpoints::detail))
        .route("/endpoints/{endpoint}/rollback", post(endpoints::rollback))
        .route("/endpoints/{endpoint}/drift", get(endpoints::drift))
        .route("/audit", get(audit::index))
        .route("/live/events", get(live_events))
        .route("/live/runs/{project}/{number}/logs", get(live_logs))
        .layer(axum::middleware::from_fn_with_state(dashboard.clone(), session))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(CSS_URL, get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route(JS_URL, get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .with_state(dashboard)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
    ];
    (headers, body).into_response()
}

/// Finds the request's session (or, on loopback with no tokens, opens one), refuses a visit
/// with none, and records every form post in the audit.
async fn session(State(dashboard): State<Dashboard>, mut request: Request, next: Next) -> Response {
    let access = dashboard.service.access();
    let found = dashboard.sessions.find(request.headers(), &access.tokens, access.required);
    let (visit, opened) = match found {
        Some(visit) => (visit, None),
        None if !access.required => match dashboard.sessions.open(Caller::local(), false) {
            Some((id, visit)) => (visit, Some(id)),
            None => return refused(StatusCode::SERVICE_UNAVAILABLE, "no random source for a session"),
        },
        None if request.method() == Method::GET => {
            let wanted = request.uri().path_and_query().map_or("/", |p| p.as_str());
            return Redirect::to(&format!("/login?next={}", encode(wanted))).into_response();
        }
        None => return refused(StatusCode::UNAUTHORIZED, "log in first: this server needs a token"),
    };
    let action = format!("{} {}", request.method(), request.uri().path());
    let posted = request.method() == Method::POST;
    request.extensions_mut().insert(visit.clone());
    let mut response = next.run(request).await;
    if posted {
        dashboard.service.record(&visit.caller, &action, response.status()).await;
    }
    if let Some(id) = opened {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(&id));
    }
    // No other site may frame these pages (clickjacking), or sniff them as something else.
    let headers = response.headers_mut();
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// A posted form: its fields in order (a checkbox sends its hidden `false` first).
pub(super) struct Posted {
    fields: Vec<(String, String)>,
}

impl Posted {
    /// The last value of a field.
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Checks a post's CSRF token and the caller's role, and gives its fields.
fn check_post(visit: &Visit, body: &[u8], needed: Role) -> Result<Posted, Response> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| refused(StatusCode::BAD_REQUEST, "this form could not be read"))?;
    let posted = Posted { fields };
    if !visit.csrf_matches(posted.get(CSRF_FIELD)) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "this form has no valid CSRF token: reload the page and send it again",
        ));
    }
    if visit.caller.role < needed {
        return Err(refused(
            StatusCode::FORBIDDEN,
            &format!(
                "{} is a {} and may not do this; it needs an {} token",
                visit.caller.name,
                layout::role_name(visit.caller.role),
                layout::role_name(needed)
            ),
        ));
    }
    Ok(posted)
}

/// A short page saying why a request is refused.
fn refused(status: StatusCode, message: &str) -> Response {
    let body = page(
        None,
        "Refused",
        Section::None,
        Live::Still,
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            (layout::notice("bad", message))
            p { a href="/" { "Back to the projects" } }
        },
    );
    (status, Html(body.into_string())).into_response()
}

/// A service error as a page: the same message and hint the API and the CLI give.
fn failed(visit: &Visit, error: &ServiceError) -> Response {
    let body = page(
        Some(visit),
        "Error",
        Section::None,
        Live::Still,
        html! {
            h1 { (error.status.as_u16()) " " (error.status.canonical_reason().unwrap_or("")) }
            (layout::notice("bad", &error.message))
            @if let Some(hint) = &error.hint { p.muted { "Hint: " (hint) } }
            p { a href="/" { "Back to the projects" } }
        },
    );
    (error.status, Html(body.into_string())).into_response()
}

fn html_page(markup: Markup) -> Response {
    let headers = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    (headers, Html(markup.into_string())).into_response()
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A name from a URL, or the page saying it is not one.
fn name(visit: &Visit, what: &str, text: &str) -> Result<names::Name, Response> {
    crate::service::name(what, text).map_err(|e| failed(visit, &e))
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Where a login goes on to: a path of this server only, never another site.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => next.to_owned(),
        _ => "/".to_owned(),
    }
}

async fn login_page(
    State(dashboard): State<Dashboard>,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    if !dashboard.service.access().required {
        return Redirect::to(&next_path(query.next.as_deref())).into_response();
    }
    html_page(login_form(query.next.as_deref(), None))
}

fn login_form(next: Option<&str>, error: Option<&str>) -> Markup {
    page(
        None,
        "Log in",
        Section::None,
        Live::Still,
        html! {
            h1 { "Log in" }
            p.lead { "This server needs a token. An admin makes one with " code { "sagebrush token create NAME --role viewer" } "." }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next_path(next));
                div.field {
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="current-password" required
                        aria-invalid=[error.map(|_| "true")] aria-describedby="token-error";
                    @if let Some(error) = error { span.error #token-error { (error) } }
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

async fn login(State(dashboard): State<Dashboard>, body: axum::body::Bytes) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let posted = Posted { fields };
    let next = posted.get("next").map(str::to_owned);
    let token = posted.get("token").unwrap_or_default().trim();
    let Some(caller) = dashboard.service.access().tokens.verify(token) else {
        let form = login_form(next.as_deref(), Some("This token is not known to the server."));
        return (StatusCode::UNAUTHORIZED, Html(form.into_string())).into_response();
    };
    let Some((id, visit)) = dashboard.sessions.open(caller, true) else {
        return refused(StatusCode::SERVICE_UNAVAILABLE, "no random source for a session");
    };
    dashboard.service.record(&visit.caller, "POST /login", StatusCode::SEE_OTHER).await;
    let mut response = Redirect::to(&next_path(next.as_deref())).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&id));
    response
}

async fn logout(State(dashboard): State<Dashboard>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Answer {
    let access = dashboard.service.access();
    let Some(visit) = dashboard.sessions.find(&headers, &access.tokens, access.required) else {
        return Ok(Redirect::to("/login").into_response());
    };
    check_post(&visit, &body, Role::Viewer)?;
    dashboard.sessions.close(&headers);
    let mut response = Redirect::to(if access.required { "/login" } else { "/" }).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(""));
    Ok(response)
}

#[derive(serde::Deserialize)]
struct LiveQuery {
    project: Option<String>,
}

/// The event stream the pages follow: what comes next, of one project when given.
async fn live_events(
    State(dashboard): State<Dashboard>,
    axum::Extension(visit): axum::Extension<Visit>,
    axum::extract::Query(query): axum::extract::Query<LiveQuery>,
) -> Answer {
    let project = query.project.as_deref().filter(|p| !p.is_empty()).map(|p| name(&visit, "project", p)).transpose()?;
    let after = dashboard.service.last_event().await.map_err(|e| failed(&visit, &e))?;
    Ok(crate::api::event_stream(dashboard.service.clone(), after, project).into_response())
}

async fn live_logs(
    State(dashboard): State<Dashboard>,
    axum::Extension(visit): axum::Extension<Visit>,
    axum::extract::Path((project, number)): axum::extract::Path<(String, i64)>,
) -> Answer {
    let project = name(&visit, "project", &project)?;
    Ok(crate::api::follow_logs(dashboard.service.clone(), project, number, None).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_only_goes_on_to_a_path_of_this_server() {
        assert_eq!(next_path(Some("/runs/iris/3")), "/runs/iris/3");
        assert_eq!(next_path(Some("//evil.example/")), "/");
        assert_eq!(next_path(Some("https://evil.example/")), "/");
        assert_eq!(next_path(Some("/\\evil.example")), "/");
        assert_eq!(next_path(None), "/");
        assert_eq!(encode("/runs/iris/3?x=a b"), "/runs/iris/3%3Fx%3Da%20b");
    }
}
