//! Endpoints: their variants with weights, models and live traffic, the traffic shift in
//! progress, rollback, what served when, and drift.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use engine::RolloutState;
use maud::{Markup, PreEscaped, html};
use store::{EndpointKind, Role};

use super::layout::{self, Live, Section, at, badge, page, when};
use super::{Answer, Dashboard, Visit, check_post, failed, html_page, name};
use crate::charts;
use crate::service::EndpointView;

/// How often an endpoint's page reads itself again (its traffic, its rollout).
const POLL_MS: u32 = 2000;

pub(super) async fn index(State(dashboard): State<Dashboard>, Extension(visit): Extension<Visit>) -> Answer {
    let endpoints = dashboard.service.endpoints().await.map_err(|e| failed(&visit, &e))?;
    let now = store::now_ms();
    let body = html! {
        h1 { "Endpoints" }
        @if endpoints.is_empty() { p.lead { "No endpoints yet: a run's deploy stage makes them." } }
        div.scroll #endpoints data-live { table {
            thead { tr { th { "Endpoint" } th { "Serves" } th { "Variants" } th.num { "Requests" } th.num.hide-narrow { "p99 ms" } th.hide-narrow { "Updated" } } }
            tbody { @for endpoint in &endpoints { tr {
                td { a href={ "/endpoints/" (endpoint.record.name) } { (endpoint.record.name) }
                    @if endpoint.url.is_none() { " " span.badge.s-queued { "not served here" } }
                    @if let Some(rollout) = dashboard.service.rollout_of(&endpoint.record.name) {
                        @if rollout.state == RolloutState::InProgress { " " span.badge.s-running { (rollout.traffic) " in progress" } }
                    }
                }
                td { (endpoint.record.kind.serves()) }
                td { (endpoint.variants.iter().map(|v| format!("{} {:.0}%", v.name, share(endpoint, v.weight) * 100.0)).collect::<Vec<_>>().join(", ")) }
                td.num { (endpoint.variants.iter().map(|v| v.invocations).sum::<u64>()) }
                td.num.hide-narrow { (endpoint.variants.iter().filter_map(|v| v.p99_ms).fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p)))).map(|p| format!("{p:.1}")).unwrap_or_default()) }
                td.hide-narrow { (at(Some(endpoint.record.updated_at), now)) }
            } } }
        } }
    };
    Ok(html_page(page(Some(&visit), "Endpoints", Section::Endpoints, Live::Poll(POLL_MS), body)))
}

/// A variant's share of the endpoint's traffic, 0 to 1.
fn share(endpoint: &EndpointView, weight: f64) -> f64 {
    let total: f64 = endpoint.variants.iter().map(|v| v.weight.max(0.0)).sum();
    if total > 0.0 { weight.max(0.0) / total } else { 0.0 }
}

pub(super) async fn detail(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path(endpoint): Path<String>,
) -> Answer {
    let endpoint = name(&visit, "endpoint", &endpoint)?;
    let service = &dashboard.service;
    let view = service.endpoint(&endpoint).await.map_err(|e| failed(&visit, &e))?;
    let history = match service.history(&endpoint, None).await {
        Ok(history) => history,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Vec::new(),
        Err(e) => return Err(failed(&visit, &e)),
    };
    // From the history just read: not read again.
    let previous = crate::service::previous_in(&history);
    let body = html! {
        h1 { (endpoint) " " span.muted #serves data-live { (view.record.kind.serves()) } }
        @if let Some(url) = &view.url { p.mono { "POST " (url) } } @else { (layout::notice("wait", "This server does not serve it now (it is recorded, but not running here).")) }
        div #rollout data-live { (rollout(&dashboard, &endpoint)) }
        // Live: a deploy while the page is open gives it something to roll back to.
        div #rollback data-live {
            @if visit.caller.role >= Role::Operator {
                @if let Some(previous) = &previous {
                    form.inline method="post" action={ "/endpoints/" (endpoint) "/rollback" } {
                        (layout::csrf(&visit))
                        button.danger type="submit" { "Roll back to " (previous.model_group) " v" (previous.model_version) }
                    }
                }
            }
        }
        h2 { "Variants" }
        div.scroll #variants data-live { (variants(&view)) }
        h2 { "Instances" }
        div.scroll #instances data-live { (instances(&view)) }
        h2 { "Traffic, last minutes" }
        div.charts #traffic data-live {
            @for variant in &view.variants { (traffic(&dashboard, &endpoint, &variant.name, &variant.model)) }
        }
        @if let EndpointKind::MultiModel { dir, memory_budget_bytes, image } = &view.record.kind {
            h2 { "Loaded models" }
            p.mono { (dir) @if let Some(image) = image { " in " (image) } }
            @for variant in &view.variants { @if let Some(cache) = &variant.models {
                dl.facts {
                    dt { "Loaded" } dd { (cache.loaded) " models, " (cache.loaded_bytes / 1_000_000) " of " (memory_budget_bytes / 1_000_000) " MB" }
                    dt { "Loads" } dd { (cache.loads) " (" (cache.evictions) " evicted)" }
                    @if let Some(p99) = cache.load_p99_ms { dt { "Load p99" } dd { (format!("{p99:.1} ms")) } }
                }
                div.scroll { table.loaded {
                    thead { tr { th { "Model (most recently used first)" } th.num { "Size" } } }
                    tbody { @for model in &cache.models { tr { td.mono { (model.name) } td.num { (format!("{:.1} MB", model.bytes as f64 / 1e6)) } } } }
                } }
            } }
        }
        h2 { "What served when" }
        div.scroll { (served_history(&history)) }
        p { a href={ "/endpoints/" (endpoint) "/drift" } { "Drift of its captured requests →" } }
    };
    Ok(html_page(page(Some(&visit), endpoint.as_str(), Section::Endpoints, Live::Poll(POLL_MS), body)))
}

fn rollout(dashboard: &Dashboard, endpoint: &names::Name) -> Markup {
    let Some(rollout) = dashboard.service.rollout_of(endpoint) else { return html! {} };
    let now = store::now_ms();
    let alarms = [
        rollout.max_error_rate.map(|r| format!("error rate above {r}")),
        rollout.max_p99_ms.map(|p| format!("p99 above {p} ms")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let alarms = if alarms.is_empty() { "none".to_owned() } else { alarms.join(", ") };
    html! {
        @match rollout.state {
            RolloutState::InProgress => section.card.rollout {
                h2 { (rollout.traffic) " to " (rollout.model) " " (badge("in_progress")) }
                p { "Step " (rollout.step) " of " (rollout.steps) ": " strong { (format!("{:.0}%", rollout.share * 100.0)) } " of traffic on " (rollout.model)
                    ", bake " ((rollout.bake_until - now).max(0) / 1000) "s left of " (rollout.bake_seconds) "s" }
                div { span.bar style={ "width:" (format!("{:.0}", rollout.share * 100.0)) "%" } {} }
                p.muted { "Rolls back on: " (alarms) }
            },
            RolloutState::Completed => (layout::notice("ok", &format!(
                "{} to {} completed at {} ({} steps; alarms: {alarms})",
                rollout.traffic, rollout.model, when(rollout.finished_at.unwrap_or(now)), rollout.steps))),
            RolloutState::RolledBack => (layout::notice("bad", &format!(
                "{} to {} rolled back at {}: {}",
                rollout.traffic, rollout.model, when(rollout.finished_at.unwrap_or(now)), rollout.reason.as_deref().unwrap_or("an alarm fired")))),
        }
    }
}

fn variants(view: &EndpointView) -> Markup {
    html! {
        table {
            thead { tr { th { "Variant" } th { "Model" } th.num { "Weight" } th.num { "Share" } th.num { "Instances" } th.num { "Requests" } th.num { "4xx" } th.num { "5xx" } th.num { "p50 ms" } th.num { "p99 ms" } th.hide-narrow { "Last request" } } }
            tbody { @for v in &view.variants { tr {
                td { (v.name) } td { (v.model) } td.num { (v.weight) }
                td.num { (format!("{:.0}%", share(view, v.weight) * 100.0)) }
                td.num { (v.instances) } td.num { (v.invocations) } td.num { (v.errors_4xx) } td.num { (v.errors_5xx) }
                td.num { (v.p50_ms.map(|p| format!("{p:.1}")).unwrap_or_default()) }
                td.num { (v.p99_ms.map(|p| format!("{p:.1}")).unwrap_or_default()) }
                td.hide-narrow { (at(v.last_invoked_ms.and_then(|ms| i64::try_from(ms).ok()), store::now_ms())) }
            } } }
        }
    }
}

fn instances(view: &EndpointView) -> Markup {
    let now = store::now_ms();
    html! {
        table {
            thead { tr { th { "Variant" } th { "Model" } th { "Instance" } th { "Health" } th.hide-narrow { "Last ping" } } }
            tbody { @for v in &view.variants { @for instance in &v.instance_health { tr {
                td { (v.name) } td { (v.model) } td.mono { (instance.url) }
                td { (badge(&layout::name_of(instance.health)))
                    @if instance.missed_pings > 0 { " missed " (instance.missed_pings) " ping" @if instance.missed_pings > 1 { "s" } } }
                td.hide-narrow { (at(instance.checked_ms.and_then(|ms| i64::try_from(ms).ok()), now)) }
            } } } }
        }
    }
}

fn traffic(dashboard: &Dashboard, endpoint: &str, variant: &str, model: &str) -> Markup {
    let points = dashboard.traffic.series(endpoint, variant, model);
    let rps: Vec<(i64, Option<f64>)> = points.iter().map(|p| (p.at, Some(p.per_second))).collect();
    let p50: Vec<(i64, Option<f64>)> = points.iter().map(|p| (p.at, p.p50_ms)).collect();
    let p99: Vec<(i64, Option<f64>)> = points.iter().map(|p| (p.at, p.p99_ms)).collect();
    let errors: Vec<(i64, Option<f64>)> =
        points.iter().map(|p| (p.at, (p.per_second > 0.0).then_some(p.error_rate * 100.0))).collect();
    let chart = |title: &str, series: &[(i64, Option<f64>)], unit: &str| {
        PreEscaped(charts::series(&format!("{variant} ({model}) {title}"), series, unit).to_string())
    };
    html! {
        (chart("requests/s", &rps, "/s"))
        (chart("p50", &p50, "ms"))
        (chart("p99", &p99, "ms"))
        (chart("errors", &errors, "%"))
    }
}

fn served_history(history: &[crate::service::Served]) -> Markup {
    html! {
        table {
            thead { tr { th { "From" } th { "Until" } th { "Served" } th.hide-narrow { "Approved by" } } }
            tbody { @for stretch in history.iter().rev() { tr {
                td { (when(stretch.from)) }
                td { @match stretch.until { Some(until) => (when(until)), None => "now" } }
                td {
                    @if stretch.deleted { "deleted" }
                    @for v in &stretch.variants {
                        div { (v.variant) ": " (v.model_group) " v" (v.model_version) " (weight " (v.weight) ")"
                            @if let (Some(project), Some(run)) = (&v.project, v.run) { " from " a href={ "/runs/" (project) "/" (run) } { (project) " #" (run) } } }
                    }
                }
                td.hide-narrow { @for v in &stretch.variants { @if let Some(by) = &v.approved_by {
                    div { (by) @if let Some(reason) = &v.approval_reason { ": " (reason) } } } } }
            } } }
        }
        @if history.is_empty() { p.muted { "No history recorded." } }
    }
}

pub(super) async fn rollback(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path(endpoint): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    check_post(&visit, &body, Role::Operator)?;
    let endpoint = name(&visit, "endpoint", &endpoint)?;
    dashboard.service.rollback(&endpoint).await.map_err(|e| failed(&visit, &e))?;
    Ok(Redirect::to(&format!("/endpoints/{endpoint}")).into_response())
}

pub(super) async fn drift(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path(endpoint): Path<String>,
) -> Answer {
    let endpoint = name(&visit, "endpoint", &endpoint)?;
    let report = dashboard.service.drift(&endpoint, None, None).await.map_err(|e| failed(&visit, &e))?;
    let body = html! {
        h1 { (endpoint) ": drift" }
        p.lead { (report.rows) " newest captured requests (window " (report.window) ", " (report.skipped) " left out) against the training data of "
            (report.model_group) " v" (report.model_version) "." }
        // With nothing captured there is nothing to compare: no PSI is shown rather than a meaningless one.
        @if report.rows == 0 { (layout::notice("wait", "No captured requests yet: deploy with capture_percent and send it some.")) } @else {
        div.scroll { table {
            thead { tr { th { "Feature" } th.num { "PSI" } th { "Drifted (PSI > " (report.threshold) ")" } } }
            tbody { @for feature in &report.features { tr {
                td { (feature.feature) } td.num { (format!("{:.4}", feature.psi)) }
                td { @if feature.drifted { span.badge.s-failed { "drifted" } } @else { span.badge.s-succeeded { "no" } } }
            } } }
        } }
        h2 { "Distributions: training against captured" }
        div.scroll { (PreEscaped(charts::drift(&report).to_string())) }
        }
    };
    Ok(html_page(page(Some(&visit), &format!("{endpoint} drift"), Section::Endpoints, Live::Still, body)))
}
