//! The page around every view, and the small pieces views share: status badges, times, durations, forms.

use maud::{DOCTYPE, Markup, html};
use store::Role;

use super::session::Visit;

/// Which section of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Projects,
    Models,
    Endpoints,
    Audit,
    None,
}

/// How a page updates itself while open.
pub(super) enum Live<'a> {
    Still,
    /// Follows the event stream (of one project, when given).
    Events(Option<&'a str>),
    /// Fetches itself again every this many milliseconds.
    Poll(u32),
    /// Follows the event stream and a run's logs.
    Run {
        project: &'a str,
        logs: String,
    },
}

/// A whole page: head, navigation, who is signed in, and `body` in `<main>`.
pub(super) fn page(visit: Option<&Visit>, title: &str, section: Section, live: Live<'_>, body: Markup) -> Markup {
    let (events, poll, logs) = match live {
        Live::Still => (None, None, None),
        Live::Events(project) => (Some(project.unwrap_or_default()), None, None),
        Live::Poll(ms) => (None, Some(ms), None),
        Live::Run { project, logs } => (Some(project), None, Some(logs)),
    };
    let link = |href: &str, label: &str, this: Section| {
        html! { a href=(href) aria-current=[(section == this).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sagebrush" }
                link rel="stylesheet" href=(super::CSS_URL);
                script src=(super::JS_URL) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "sagebrush" }
                    @if let Some(visit) = visit {
                        nav aria-label="Sections" {
                            (link("/", "Projects", Section::Projects))
                            (link("/models", "Models", Section::Models))
                            (link("/endpoints", "Endpoints", Section::Endpoints))
                            (link("/audit", "Audit", Section::Audit))
                        }
                        div.who {
                            span { (visit.caller.name) " · " (role_name(visit.caller.role)) }
                            @if visit.logged_in {
                                form method="post" action="/logout" {
                                    (csrf(visit))
                                    button.quiet type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main id="main" data-events=[events] data-poll=[poll] data-logs=[logs] { (body) }
            }
        }
    }
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// The hidden CSRF field every form carries.
pub(super) fn csrf(visit: &Visit) -> Markup {
    html! { input type="hidden" name=(super::CSRF_FIELD) value=(visit.csrf); }
}

/// A status as a coloured badge; `status` is the enum's serialized name.
pub(super) fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status.replace('_', " ")) } }
}

/// The serialized (snake_case) name of a status enum.
pub(super) fn name_of(value: impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A time (ms since the epoch) as UTC, `2026-12-01 21:31:19`.
pub(super) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A time as `<time>`, with how long ago it was.
pub(super) fn at(ms: Option<i64>, now: i64) -> Markup {
    match ms {
        Some(ms) => html! { time datetime=(when(ms)) title=(when(ms)) { (ago(now - ms)) } },
        None => html! { span.muted { "—" } },
    }
}

fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// How long from `start` to `end` (or to `now` while going on): `850ms`, `12.3s`, `4m 05s`.
pub(super) fn took(start: Option<i64>, end: Option<i64>, now: i64) -> String {
    let Some(start) = start else { return String::new() };
    let ms = (end.unwrap_or(now) - start).max(0);
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// The first 10 characters of a commit.
pub(super) fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

/// A notice box.
pub(super) fn notice(kind: &str, text: &str) -> Markup {
    html! { div class={ "notice " (kind) } role="status" { (text) } }
}
