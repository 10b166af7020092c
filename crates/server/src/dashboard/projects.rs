//! The projects page, a project's stage view (Jenkins' "Stage View"), and its "Run with parameters" form.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use pipeline::{Parameter, ParameterType};
use store::{Role, RunRecord, StageRecord};

use super::layout::{self, Live, Section, at, badge, name_of, page, short, took};
use super::{Answer, Dashboard, Visit, check_post, failed, html_page, name};
use crate::service::RunFilter;

/// Runs in a page of the stage view.
const STAGE_VIEW_RUNS: i64 = 25;
/// Runs shown per project on the projects page.
const PROJECT_RUNS: i64 = 5;

pub(super) async fn index(State(dashboard): State<Dashboard>, Extension(visit): Extension<Visit>) -> Answer {
    let service = &dashboard.service;
    let projects = service.projects().await.map_err(|e| failed(&visit, &e))?;
    let now = store::now_ms();
    let mut rows = Vec::new();
    for project in &projects {
        let filter = RunFilter { project: Some(project.name.clone()), limit: Some(PROJECT_RUNS), ..Default::default() };
        let page = service.runs(&filter).await.map_err(|e| failed(&visit, &e))?;
        rows.push((project, page.runs));
    }
    let body = html! {
        h1 { "Projects" }
        @if projects.is_empty() {
            p.lead { "No projects yet. Add one with " code { "sagebrush project add <folder>" } " or start the server with " code { "--project <folder>" } "." }
        }
        div.cards #projects data-live {
            @for (project, runs) in &rows {
                section.card {
                    h2 { a href={ "/projects/" (project.name) } { (project.name) } " "
                        @if let Some(last) = runs.first() { (badge(&name_of(last.status))) } }
                    p.muted.mono { (project.repo.as_deref().unwrap_or(&project.path))
                        @if let Some(branch) = &project.branch { " · " (branch) } }
                    @if runs.is_empty() { p.muted { "No runs yet." } } @else {
                        div.scroll { table {
                            thead { tr { th { "Run" } th { "Status" } th { "Trigger" } th.hide-narrow { "Commit" } th { "Took" } } }
                            tbody { @for run in runs { tr {
                                td { a href={ "/runs/" (run.project) "/" (run.number) } { "#" (run.number) } }
                                td { (badge(&name_of(run.status))) }
                                td { (name_of(run.trigger)) }
                                td.mono.hide-narrow { (run.commit_sha.as_deref().map(short).unwrap_or("")) }
                                td { (took(run.started_at, run.finished_at, now)) }
                            } } }
                        } }
                    }
                }
            }
        }
    };
    Ok(html_page(page(Some(&visit), "Projects", Section::Projects, Live::Events(None), body)))
}

#[derive(serde::Deserialize)]
pub(super) struct PageQuery {
    cursor: Option<i64>,
}

pub(super) async fn project(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path(project): Path<String>,
    Query(query): Query<PageQuery>,
) -> Answer {
    let project = name(&visit, "project", &project)?;
    // The form is known before the first run: from the pipeline file as it is now.
    let parameters = dashboard.service.parameters(&project).await.map_err(|e| failed(&visit, &e))?;
    let markup = project_page(&dashboard, &visit, &project, query.cursor, &parameters, &Form::defaults()).await?;
    Ok(html_page(markup))
}

/// What the run form shows: the values sent (none at first) and the message for a field.
struct Form {
    values: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    general: Option<String>,
}

impl Form {
    fn defaults() -> Form {
        Form { values: BTreeMap::new(), errors: BTreeMap::new(), general: None }
    }
}

async fn project_page(
    dashboard: &Dashboard,
    visit: &Visit,
    project: &names::Name,
    cursor: Option<i64>,
    parameters: &[Parameter],
    form: &Form,
) -> Result<Markup, Response> {
    let filter =
        RunFilter { project: Some(project.to_string()), limit: Some(STAGE_VIEW_RUNS), cursor, ..Default::default() };
    let (runs, next_cursor) = dashboard.service.stage_view(&filter).await.map_err(|e| failed(visit, &e))?;
    let now = store::now_ms();
    let body = html! {
        h1 { (project) }
        @if visit.caller.role >= Role::Operator {
            (run_form(visit, project, parameters, form, runs.is_empty() || !form.errors.is_empty() || form.general.is_some()))
        }
        h2 { "Stage view" }
        div #stage-view data-live { (stage_view(&runs, now)) }
        div.pager {
            @if cursor.is_some() { a href={ "/projects/" (project) } { "← Newest runs" } }
            @if let Some(next) = next_cursor { a href={ "/projects/" (project) "?cursor=" (next) } { "Older runs →" } }
        }
    };
    Ok(page(Some(visit), project.as_str(), Section::Projects, Live::Events(Some(project.as_str())), body))
}

/// Recent runs as rows and stages as columns, each cell coloured by its status with its duration.
fn stage_view(runs: &[(RunRecord, Vec<StageRecord>)], now: i64) -> Markup {
    // The columns: every stage name in the order the newest runs have them.
    let mut columns: Vec<&str> = Vec::new();
    for (_, stages) in runs {
        for stage in stages {
            if !columns.contains(&stage.name.as_str()) {
                columns.push(&stage.name);
            }
        }
    }
    html! {
        @if runs.is_empty() { p.muted { "No runs yet." } } @else {
            div.scroll { table.stages {
                thead { tr {
                    th { "Run" } th.hide-narrow { "Trigger" } th.hide-narrow { "Commit" }
                    @for column in &columns { th { (column) } }
                } }
                tbody { @for (run, stages) in runs {
                    tr id={ "run-" (run.number) } {
                        td {
                            a href={ "/runs/" (run.project) "/" (run.number) } { "#" (run.number) } " "
                            (badge(&name_of(run.status)))
                            div.muted { (at(Some(run.created_at), now)) " · " (took(run.started_at, run.finished_at, now)) }
                            @if let Some(reason) = &run.reason {
                                div class={ "why" @if run.status == store::RunStatus::Waiting { " waiting" } } { (names::excerpt(reason, 160)) }
                            }
                        }
                        td.hide-narrow { (name_of(run.trigger))
                            @if let Some(by) = &run.triggered_by { div.muted { (by) } } }
                        td.mono.hide-narrow { (run.commit_sha.as_deref().map(short).unwrap_or("")) }
                        @for column in &columns {
                            @match stages.iter().find(|s| s.name == *column) {
                                Some(stage) => (cell(run, stage, now)),
                                None => td.cell.none {},
                            }
                        }
                    }
                } }
            } }
        }
    }
}

fn cell(run: &RunRecord, stage: &StageRecord, now: i64) -> Markup {
    let status = name_of(stage.status);
    let duration = took(stage.started_at, stage.finished_at, now);
    let label = format!("{}: {status} {duration}", stage.name);
    let inner = html! { (status) @if !duration.is_empty() { br; span.d { (duration) } } };
    html! {
        td class={ "cell s-" (status) } title=(stage.reason.as_deref().unwrap_or(&label)) {
            @if stage.status == store::StageStatus::Failed {
                // A failed cell opens its log at the end, where the failure is.
                a href={ "/runs/" (run.project) "/" (run.number) "#log-" (stage.name) } aria-label=(label) { (inner) }
            } @else {
                span.fill aria-label=(label) { (inner) }
            }
        }
    }
}

/// "Run with parameters": one field per declared parameter, typed as the pipeline declares it.
fn run_form(visit: &Visit, project: &names::Name, parameters: &[Parameter], form: &Form, open: bool) -> Markup {
    html! {
        details.card #run-form open[open] {
            summary { h2.inline { @if parameters.is_empty() { "Run" } @else { "Run with parameters" } } }
            @if let Some(general) = &form.general { (layout::notice("bad", general)) }
            // The server checks every value, with the CLI's messages; the browser does not stop a send.
            form method="post" action={ "/projects/" (project) "/runs" } novalidate {
                (layout::csrf(visit))
                @for parameter in parameters { (field(parameter, form)) }
                button type="submit" { "Run " (project) }
            }
        }
    }
}

fn field(parameter: &Parameter, form: &Form) -> Markup {
    let id = format!("p-{}", parameter.name);
    let input_name = format!("p.{}", parameter.name);
    let error = form.errors.get(&parameter.name);
    let error_id = format!("{id}-error");
    // A secret is never echoed back, not even after a failed send.
    let value = match parameter.ty {
        ParameterType::Secret => String::new(),
        _ => form
            .values
            .get(&parameter.name)
            .cloned()
            .or_else(|| parameter.default.as_ref().map(|d| d.to_string()))
            .unwrap_or_default(),
    };
    let invalid = error.map(|_| "true");
    let described = error.map(|_| error_id.as_str());
    let (help, range) = describe(&parameter.ty);
    html! {
        div.field {
            label for=(id) { (parameter.name) " " span.muted { "(" (parameter.ty.name()) ")" } }
            @match &parameter.ty {
                ParameterType::Int { min, max } => input #(id) type="number" step="1" name=(input_name) value=(value)
                    min=[min] max=[max] aria-invalid=[invalid] aria-describedby=[described];
                ParameterType::Float { min, max } => input #(id) type="number" step="any" name=(input_name) value=(value)
                    min=[min] max=[max] aria-invalid=[invalid] aria-describedby=[described];
                ParameterType::Bool => span {
                    input type="hidden" name=(input_name) value="false";
                    input #(id) type="checkbox" name=(input_name) value="true" checked[value == "true"]
                        aria-invalid=[invalid] aria-describedby=[described];
                },
                ParameterType::Choice(choices) => select #(id) name=(input_name) aria-invalid=[invalid] aria-describedby=[described] {
                    @for choice in choices { option value=(choice) selected[*choice == value] { (choice) } }
                },
                ParameterType::Secret => input #(id) type="password" name=(input_name) autocomplete="off"
                    placeholder="env:NAME or file:PATH" aria-invalid=[invalid] aria-describedby=[described];
                ParameterType::String | ParameterType::Path => input #(id) type="text" name=(input_name) value=(value)
                    aria-invalid=[invalid] aria-describedby=[described];
            }
            @if let Some(error) = error {
                @let (message, hint) = error.split_once("\nhint: ").unwrap_or((error, ""));
                span.error #(error_id) role="alert" { (message) }
                @if !hint.is_empty() { span.help { "hint: " (hint) } }
            }
            @let text = [parameter.help.clone(), range, help].into_iter().flatten().collect::<Vec<_>>().join(" · ");
            @if !text.is_empty() { span.help { (text) } }
        }
    }
}

/// A type's hint and its range, as words.
fn describe(ty: &ParameterType) -> (Option<String>, Option<String>) {
    fn range<T: std::fmt::Display>(min: &Option<T>, max: &Option<T>) -> Option<String> {
        match (min, max) {
            (Some(min), Some(max)) => Some(format!("{min} to {max}")),
            (Some(min), None) => Some(format!("at least {min}")),
            (None, Some(max)) => Some(format!("at most {max}")),
            (None, None) => None,
        }
    }
    match ty {
        ParameterType::Int { min, max } => (None, range(min, max)),
        ParameterType::Float { min, max } => (None, range(min, max)),
        ParameterType::Secret => (Some("a reference, never the value: env:NAME or file:PATH".to_owned()), None),
        ParameterType::Path => (Some("relative to the project".to_owned()), None),
        _ => (None, None),
    }
}

/// Starts a run with the form's values, or shows the form again with the server's message next to its field.
pub(super) async fn submit(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path(project): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let posted = check_post(&visit, &body, Role::Operator)?;
    let project = name(&visit, "project", &project)?;
    let parameters = dashboard.service.parameters(&project).await.map_err(|e| failed(&visit, &e))?;
    // An empty field is not given, so its default applies (or the missing value is named).
    let values: BTreeMap<String, String> = parameters
        .iter()
        .filter_map(|p| {
            let value = posted.get(&format!("p.{}", p.name))?;
            (!value.trim().is_empty()).then(|| (p.name.clone(), value.to_owned()))
        })
        .collect();
    let overrides: Vec<(String, String)> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    match dashboard.service.submit(&project, &overrides, &visit.caller).await {
        Ok(submitted) => {
            Ok(Redirect::to(&format!("/runs/{}/{}", submitted.run.project, submitted.run.number)).into_response())
        }
        Err(error) if error.status.is_client_error() => {
            let mut form = Form { values, errors: BTreeMap::new(), general: None };
            // The CLI's message, its hint (inside it, for a pipeline's error) shown apart.
            let (first, rest) = error.message.split_once('\n').unwrap_or((&error.message, ""));
            let hint = rest.trim().trim_start_matches("hint:").trim();
            let hint = error.hint.as_deref().or((!hint.is_empty()).then_some(hint));
            let message = match hint {
                Some(hint) => format!("{first}\nhint: {hint}"),
                None => first.to_owned(),
            };
            match error.extra.get("parameter").and_then(|p| p.as_str()) {
                Some(parameter) => {
                    form.errors.insert(parameter.to_owned(), message);
                }
                None => form.general = Some(message),
            }
            form.values.retain(|name, _| !parameters.iter().any(|p| &p.name == name && p.ty == ParameterType::Secret));
            let markup = project_page(&dashboard, &visit, &project, None, &parameters, &form).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(markup.into_string())).into_response())
        }
        Err(error) => Err(failed(&visit, &error)),
    }
}
