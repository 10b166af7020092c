//! Model groups and their versions: lineage, approval status, and approve or reject for a waiting run.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};
use store::{ModelApprovalStatus, ModelVersionRecord, Role};

use super::layout::{Live, Section, at, badge, name_of, page, short};
use super::{Answer, Dashboard, Visit, failed, html_page};

pub(super) async fn index(State(dashboard): State<Dashboard>, Extension(visit): Extension<Visit>) -> Answer {
    let versions = dashboard.service.models(None).await.map_err(|e| failed(&visit, &e))?;
    // What serves each version now: endpoint names by (group, version).
    let endpoints = dashboard.service.endpoints().await.map_err(|e| failed(&visit, &e))?;
    let mut serving: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for endpoint in &endpoints {
        for variant in &endpoint.variants {
            serving.entry(&variant.model).or_default().push(&endpoint.record.name);
        }
    }
    let mut groups: BTreeMap<&str, Vec<&ModelVersionRecord>> = BTreeMap::new();
    for version in &versions {
        groups.entry(&version.model_group).or_default().push(version);
    }
    let now = store::now_ms();
    let body = html! {
        h1 { "Models" }
        @if groups.is_empty() { p.lead { "No model versions yet: a run's register stage makes them." } }
        div #models data-live {
            @for (group, versions) in &groups {
                section.card {
                    h2 { (group) " " span.muted { (versions.len()) @if versions.len() == 1 { " version" } @else { " versions" } } }
                    @for version in versions { (version_row(&visit, version, serving.get(format!("{} v{}", version.model_group, version.version).as_str()), now)) }
                }
            }
        }
    };
    Ok(html_page(page(Some(&visit), "Models", Section::Models, Live::Events(None), body)))
}

fn version_row(visit: &Visit, version: &ModelVersionRecord, serving: Option<&Vec<&str>>, now: i64) -> Markup {
    let lineage = &version.lineage.0;
    let text = |key: &str| lineage.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let project = text("project");
    let run = lineage.get("run").and_then(|v| v.as_i64());
    let anchor = format!("{}-v{}", version.model_group, version.version);
    let pending = version.approval_status == ModelApprovalStatus::PendingManualApproval;
    html! {
        article.version id=(anchor) {
            h3 {
                (version.model_group) " v" (version.version) " "
                (badge(&name_of(version.approval_status)))
                @if let Some(serving) = serving { " " @for endpoint in serving { a.badge.s-InService href={ "/endpoints/" (endpoint) } { "serves " (endpoint) } " " } }
            }
            dl.facts {
                dt { "Registered" } dd { (at(Some(version.created_at), now))
                    @if let (Some(project), Some(run)) = (&project, run) { " by " a href={ "/runs/" (project) "/" (run) } { (project) " #" (run) } } }
                dt { "Algorithm" } dd.mono { (version.algorithm) }
                @if let Some(commit) = text("commit") { dt { "Commit" } dd.mono title=(commit) { (short(&commit)) } }
                dt { "Artifact" } dd.mono { (version.artifact_uri) br; "sha256 " (version.artifact_sha256) }
                @if let Some(data) = lineage.get("data").and_then(|d| d.as_object()) {
                    @for (channel, checksum) in data {
                        dt { "Data: " (channel) } dd.mono { (checksum.as_str().or_else(|| checksum.get("sha256").and_then(|s| s.as_str())).map_or_else(|| checksum.to_string(), str::to_owned)) }
                    }
                }
                @if let Some(image) = lineage.get("image").filter(|i| !i.is_null()) {
                    dt { "Image" } dd.mono {
                        (image.get("digest").or(image.get("image")).and_then(|d| d.as_str()).unwrap_or_default())
                        @if let Some(packages) = image.get("packages").and_then(|p| p.as_u64()) { br; "SBOM: " (packages) " packages" }
                    }
                }
                @if let Some(hyper) = lineage.get("hyperparameters").and_then(|h| h.as_object()).filter(|h| !h.is_empty()) {
                    dt { "Hyperparameters" } dd.mono { @for (k, v) in hyper { (k) "=" (v.as_str().map_or_else(|| v.to_string(), str::to_owned)) " " } }
                }
                @if let Some(metrics) = lineage.get("metrics").and_then(|m| m.as_object()).filter(|m| !m.is_empty()) {
                    dt { "Metrics" } dd.mono { @for (k, v) in metrics { (k) " " (v) " " } }
                }
            }
            @if pending && visit.caller.role >= Role::Operator {
                @if let (Some(project), Some(run)) = (&project, run) {
                    (super::runs::decide_form(visit, &format!("/runs/{project}/{run}"), Some(&version.model_group), Some(version.version), Some("/models")))
                }
            }
        }
    }
}
