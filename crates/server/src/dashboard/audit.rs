//! The audit log: every change through the API or the dashboard, who made it and how it was answered, filterable.

use axum::Extension;
use axum::extract::{Query, State};
use maud::html;

use super::layout::{Live, Section, page, when};
use super::{Answer, Dashboard, Visit, encode, failed, html_page};
use crate::service::AuditQuery;

pub(super) async fn index(
    State(dashboard): State<Dashboard>,
    Extension(visit): Extension<Visit>,
    Query(query): Query<AuditQuery>,
) -> Answer {
    let page_of = dashboard.service.audit(&query).await.map_err(|e| failed(&visit, &e))?;
    let actor = query.actor.clone().unwrap_or_default();
    let action = query.action.clone().unwrap_or_default();
    let body = html! {
        h1 { "Audit log" }
        form.inline method="get" action="/audit" role="search" {
            label for="actor" { "Who" }
            input #actor type="text" name="actor" value=(actor) placeholder="a token's name, or local";
            label for="action" { "Action contains" }
            input #action type="text" name="action" value=(action) placeholder="approve, /api/v1/runs";
            button.quiet type="submit" { "Filter" }
        }
        div.scroll { table {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "Action" } th.num { "Status" } } }
            tbody { @for entry in &page_of.entries { tr {
                td { (when(entry.at)) } td { (entry.actor) } td.mono { (entry.action) }
                td.num { span class={ "badge " (if entry.status < 400 { "s-succeeded" } else { "s-failed" }) } { (entry.status) } }
            } } }
        } }
        @if page_of.entries.is_empty() { p.muted { "Nothing recorded matches." } }
        div.pager {
            @if let Some(next) = page_of.next_cursor {
                a href={ "/audit?actor=" (encode(&actor)) "&action=" (encode(&action)) "&cursor=" (next) } { "Older entries →" }
            }
        }
    };
    Ok(html_page(page(Some(&visit), "Audit log", Section::Audit, Live::Still, body)))
}
