//! A run's page: what started it, its stages on a timeline with what each produced, the training
//! job, the verdicts, each stage's log live, and cancel, retry from a stage, approve and reject.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use engine::{DeployOutput, StageOutput};
use maud::{Markup, html};
use store::{Role, RunRecord, RunStatus, StageRecord, StageStatus, TrainingJobRecord};

use super::layout::{self, Live, Section, at, badge, name_of, page, short, took, when};
use super::{Answer, Dashboard, Visit, check_post, failed, html_page, name};
use crate::service::{Decision, RunDetail};

pub(super) async fn detail(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path((project, number)): Path<(String, i64)>,
) -> Answer {
    let project = name(&visit, "project", &project)?;
    let service = &dashboard.service;
    let detail = service.run(&project, Some(number)).await.map_err(|e| failed(&visit, &e))?;
    let jobs = service.training_jobs(&detail.run).await.map_err(|e| failed(&visit, &e))?;
    let now = store::now_ms();
    let run = &detail.run;
    let title = format!("{} #{}", run.project, run.number);
    let body = html! {
        h1 { (title) " " span #run-status data-live { (badge(&name_of(run.status))) } }
        div #run-summary data-live { (summary(&visit, &detail, now)) }
        div.cards {
            section.card { h2 { "Run" } (facts(run, now)) }
            section.card { h2 { "Parameters" } (parameters(run)) }
        }
        h2 { "Stages" }
        div #timeline data-live { (timeline(&detail.stages, now)) (stage_table(&detail.stages, now)) }
        div #outputs data-live { (outputs(&detail, &jobs)) }
        h2 { "Logs" }
        div.log-head {
            label { input #follow type="checkbox" checked; " Follow the log" }
        }
        @for stage in &detail.stages {
            section.log id={ "log-section-" (stage.name) } hidden[stage.status == StageStatus::Pending || stage.status == StageStatus::Skipped] {
                div.log-head {
                    h3 { (stage.name) " " (badge(&name_of(stage.status))) }
                    a href={ "#log-" (stage.name) } data-jump={ "log-" (stage.name) } { "Jump to end" }
                }
                pre id={ "log-" (stage.name) } tabindex="0" aria-label={ "log of " (stage.name) } {}
            }
        }
    };
    let logs = format!("/live/runs/{}/{}/logs", run.project, run.number);
    Ok(html_page(page(Some(&visit), &title, Section::Projects, Live::Run { project: &run.project, logs }, body)))
}

/// The run's state in words, and what the caller can do about it.
fn summary(visit: &Visit, detail: &RunDetail, now: i64) -> Markup {
    let run = &detail.run;
    let operator = visit.caller.role >= Role::Operator;
    let base = format!("/runs/{}/{}", run.project, run.number);
    let waiting = detail.approvals.iter().find(|a| a.status == store::ApprovalStatus::Pending);
    html! {
        @match run.status {
            RunStatus::Failed | RunStatus::Cancelled => (layout::notice("bad", &format!("{}: {}", name_of(run.status), run.reason.as_deref().unwrap_or("no reason recorded")))),
            RunStatus::Waiting => (layout::notice("wait", run.reason.as_deref().unwrap_or("waiting for an approval"))),
            RunStatus::Succeeded => (layout::notice("ok", &format!("succeeded in {}", took(run.started_at, run.finished_at, now)))),
            _ => {},
        }
        @if operator {
            div.actions {
                @if !run.status.is_finished() {
                    form.inline method="post" action={ (base) "/cancel" } {
                        (layout::csrf(visit))
                        button.danger type="submit" { "Cancel run" }
                    }
                }
                @if run.status.is_finished() {
                    form.inline method="post" action={ (base) "/retry" } {
                        (layout::csrf(visit))
                        label for="retry-from" { "Retry from" }
                        select #retry-from name="from" {
                            option value="" { "the start" }
                            @for stage in &detail.stages { option value=(stage.name) selected[stage.status == StageStatus::Failed] { (stage.name) } }
                        }
                        button.quiet type="submit" { "Retry" }
                    }
                }
                @if let Some(approval) = waiting {
                    (decide_form(visit, &base, approval.model_group.as_deref(), approval.model_version, None))
                }
            }
        }
    }
}

/// Approve or reject a waiting run, with the reason that goes on record.
pub(super) fn decide_form(
    visit: &Visit,
    base: &str,
    group: Option<&str>,
    version: Option<i64>,
    back: Option<&str>,
) -> Markup {
    let what = match (group, version) {
        (Some(group), Some(version)) => format!("{group} v{version}"),
        _ => "this run".to_owned(),
    };
    let id = format!("reason-{}", base.replace('/', "-"));
    html! {
        form.inline.decide method="post" action={ (base) "/approve" } {
            (layout::csrf(visit))
            @if let Some(back) = back { input type="hidden" name="back" value=(back); }
            label for=(id) { "Reason for " (what) }
            input #(id) type="text" name="reason" required placeholder="e.g. accuracy 0.97 on the smoke test";
            button type="submit" { "Approve" }
            button.danger type="submit" formaction={ (base) "/reject" } { "Reject" }
        }
    }
}

fn facts(run: &RunRecord, now: i64) -> Markup {
    html! {
        dl.facts {
            dt { "Trigger" } dd { (name_of(run.trigger)) @if let Some(detail) = &run.trigger_detail { " · " (detail) } }
            @if let Some(by) = &run.triggered_by { dt { "By" } dd { (by) } }
            @if let Some(commit) = &run.commit_sha { dt { "Commit" } dd.mono title=(commit) { (short(commit)) } }
            dt { "Queued" } dd { (at(Some(run.created_at), now)) }
            dt { "Started" } dd { (at(run.started_at, now)) }
            dt { "Finished" } dd { (at(run.finished_at, now)) }
            dt { "Took" } dd { (took(run.started_at, run.finished_at, now)) }
            @if let Some(retried) = run.retry_of {
                dt { "Retry of" } dd { a href={ "/runs/" (run.project) "/" (retried) } { "#" (retried) }
                    @if let Some(from) = &run.retry_from { " from " (from) } }
            }
        }
    }
}

fn parameters(run: &RunRecord) -> Markup {
    html! {
        @if run.parameters.0.is_empty() { p.muted { "None." } } @else {
            dl.facts { @for (name, value) in run.parameters.0.iter() {
                dt { (name) } dd.mono { @match value.as_str() { Some(text) => (text), None => (value.to_string()) } }
            } }
        }
    }
}

/// The stages on one time axis, as bars coloured by status.
fn timeline(stages: &[StageRecord], now: i64) -> Markup {
    let started: Vec<i64> = stages.iter().filter_map(|s| s.started_at).collect();
    let (Some(&first), Some(last)) =
        (started.iter().min(), stages.iter().filter_map(|s| s.finished_at.or(s.started_at.map(|_| now))).max())
    else {
        return html! {};
    };
    let span = (last - first).max(1) as f64;
    let row = 22.0;
    let height = row * stages.len() as f64 + 4.0;
    html! {
        svg.chart viewBox={ "0 0 1000 " (height) } width="1000" height=(height) role="img" aria-label="stage timeline" {
            @for (i, stage) in stages.iter().enumerate() {
                @let y = i as f64 * row + 2.0;
                text x="0" y=(y + 15.0) font-size="13" { (stage.name) }
                @if let Some(start) = stage.started_at {
                    @let x = 160.0 + (start - first) as f64 / span * 820.0;
                    @let w = ((stage.finished_at.unwrap_or(now) - start) as f64 / span * 820.0).max(3.0);
                    rect class={ "bar-" (name_of(stage.status)) } x=(x) y=(y) width=(w) height=(row - 6.0) rx="3" fill=(colour(stage.status)) {
                        title { (stage.name) ": " (took(stage.started_at, stage.finished_at, now)) }
                    }
                }
            }
        }
    }
}

fn colour(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Succeeded => "#1a7f37",
        StageStatus::Failed => "#cf222e",
        StageStatus::Running => "#0969da",
        StageStatus::Waiting => "#9a6700",
        _ => "#8c959f",
    }
}

fn stage_table(stages: &[StageRecord], now: i64) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th { "Stage" } th { "Kind" } th { "Status" } th.num { "Attempts" } th { "Took" } th { "Why" } } }
            tbody { @for stage in stages { tr {
                td { a href={ "#log-" (stage.name) } { (stage.name) } }
                td { (stage.kind) }
                td { (badge(&name_of(stage.status))) }
                td.num { (stage.attempts) }
                td { (took(stage.started_at, stage.finished_at, now)) }
                td.why { (stage.reason.as_deref().unwrap_or("")) }
            } } }
        } }
    }
}

/// What each stage produced: the training job, the image, the verdicts, the deploys.
fn outputs(detail: &RunDetail, jobs: &[TrainingJobRecord]) -> Markup {
    html! {
        @for job in jobs { (training_job(job)) }
        @for stage in &detail.stages {
            @if let Ok(output) = StageOutput::parse(&stage.kind, stage.outputs.0.clone()) {
                (output_card(&stage.name, &output))
            }
        }
        @for approval in &detail.approvals {
            section.card {
                h2 { "Approval: " (approval.stage) " " (badge(&name_of(approval.status))) }
                dl.facts {
                    @if let (Some(group), Some(version)) = (&approval.model_group, approval.model_version) {
                        dt { "Model" } dd { (group) " v" (version) }
                    }
                    dt { "Asked" } dd { (when(approval.requested_at)) }
                    @if let Some(expires) = approval.expires_at { dt { "Expires" } dd { (when(expires)) } }
                    @if let Some(by) = &approval.decided_by { dt { "Decided by" } dd { (by) } }
                    @if let Some(reason) = &approval.reason { dt { "Reason" } dd { (reason) } }
                }
            }
        }
    }
}

fn training_job(job: &TrainingJobRecord) -> Markup {
    let no_metrics = serde_json::Map::new();
    let metrics = job.metrics.as_object().unwrap_or(&no_metrics);
    html! {
        section.card.job {
            h2 { "Training job " span.mono { (job.name) } " " (badge(&name_of(job.status))) }
            dl.facts {
                dt { "Status" } dd { (name_of(job.status)) " / " (name_of(job.secondary_status)) }
                dt { "Algorithm" } dd.mono { (job.algorithm) }
                @if let Some(reason) = &job.failure_reason { dt { "Failure reason" } dd.why { (reason) } }
                @for (metric, value) in metrics { dt { (metric) } dd.mono { (value) } }
                @if let Some(uri) = &job.model_uri { dt { "Artifact" } dd.mono { (uri) } }
                @if let Some(sha) = &job.model_sha256 { dt { "sha256" } dd.mono { (sha) } }
            }
        }
    }
}

fn output_card(stage: &str, output: &StageOutput) -> Markup {
    match output {
        StageOutput::Build(image) => html! {
            section.card { h2 { "Image (" (stage) ")" }
                dl.facts {
                    dt { "Image" } dd.mono { (image.image) }
                    @if let Some(digest) = &image.digest { dt { "Digest" } dd.mono { (digest) } }
                    dt { "Size" } dd { (image.size_bytes / 1_000_000) " MB" }
                    dt { "SBOM" } dd { (image.packages) " packages" }
                }
            }
        },
        StageOutput::SmokeTest(smoke) => html! {
            section.card { h2 { "Smoke test (" (stage) ")" }
                dl.facts {
                    dt { "Accuracy" } dd { (format!("{:.4}", smoke.accuracy)) }
                    dt { "Rows" } dd { (smoke.rows) }
                    dt { "HTTP status" } dd { (smoke.status) }
                }
            }
        },
        StageOutput::Gate(gate) => html! {
            section.card { h2 { "Gate (" (stage) "): passed" }
                dl.facts { @for (metric, value) in &gate.metrics { dt { (metric) } dd { (value) } } }
            }
        },
        StageOutput::Champion(champion) => html! {
            section.card { h2 { "Champion (" (stage) "): " (champion.verdict) }
                dl.facts {
                    dt { (champion.metric) } dd { (champion.candidate) " against " (champion.champion.map(|c| c.to_string()).unwrap_or_else(|| "none".to_owned())) }
                    @if let Some(model) = &champion.champion_model { dt { "Champion" } dd { (model) } }
                }
            }
        },
        StageOutput::AbTest(ab) => html! {
            section.card { h2 { "A/B test (" (stage) "): " (ab.decision) }
                p { (ab.why) } p.muted { "p = " (format!("{:.4}", ab.p_value)) ", kept " (ab.kept) }
            }
        },
        StageOutput::Register(registered) => html! {
            section.card { h2 { "Registered (" (stage) ")" }
                p { a href={ "/models#" (registered.model_group) "-v" (registered.model_version) } { (registered.model_group) " v" (registered.model_version) } }
            }
        },
        StageOutput::Deploy(DeployOutput::Version { endpoint, model_group, model_version, events, .. }) => html! {
            section.card { h2 { "Deployed (" (stage) ")" }
                p { a href={ "/endpoints/" (endpoint) } { (endpoint) } " serves " (model_group) " v" (model_version) }
                ul { @for event in events { li { (event) } } }
            }
        },
        StageOutput::Checkout(checkout) => html! {
            @if let Some(commit) = &checkout.commit {
                section.card { h2 { "Checkout (" (stage) ")" } p.mono { (commit) @if checkout.dirty == Some(true) { " (dirty)" } } }
            }
        },
        _ => html! {},
    }
}

/// Cancel, retry, approve or reject, as the run's buttons post them.
pub(super) async fn act(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Path((project, number, action)): Path<(String, i64, String)>,
    body: axum::body::Bytes,
) -> Answer {
    let posted = check_post(&visit, &body, Role::Operator)?;
    let project = name(&visit, "project", &project)?;
    let service = &dashboard.service;
    // A decision made on the models page goes back there.
    let back = || match posted.get("back") {
        Some(back) => Redirect::to(&super::next_path(Some(back))).into_response(),
        None => Redirect::to(&format!("/runs/{project}/{number}")).into_response(),
    };
    let decision = || Decision { reason: posted.get("reason").unwrap_or_default().to_owned() };
    let done = match action.as_str() {
        "cancel" => service.cancel(&project, Some(number)).await.map(|_| back()),
        "approve" | "reject" => service
            .decide(&project, Some(number), action == "approve", &decision(), &visit.caller)
            .await
            .map(|_| back()),
        "retry" => {
            let from = posted.get("from").filter(|f| !f.is_empty()).map(|f| name(&visit, "stage", f)).transpose()?;
            service.retry(&project, Some(number), from.as_ref(), &visit.caller).await.map(|submitted| {
                Redirect::to(&format!("/runs/{}/{}", submitted.run.project, submitted.run.number)).into_response()
            })
        }
        _ => return Err(super::refused(axum::http::StatusCode::NOT_FOUND, "no such action")),
    };
    done.map_err(|e| failed(&visit, &e))
}
