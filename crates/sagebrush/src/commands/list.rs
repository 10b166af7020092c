//! `runs`, `show`, `endpoints` and `models`: tables for people, `--json` for scripts.

use std::process::ExitCode;

use engine::Home;
use names::printable;

use crate::cli::{DeleteEndpointArgs, EndpointsArgs, EventsArgs, GcArgs, HistoryArgs, ModelsArgs, RunRef, RunsArgs};
use crate::commands::{format_time, print_json};
use crate::via::Via;

pub async fn runs(home: &Home, args: RunsArgs) -> anyhow::Result<ExitCode> {
    let filter = server::service::RunFilter {
        project: args.project.map(|p| p.to_string()),
        limit: Some(args.limit),
        ..Default::default()
    };
    let runs = Via::open(home).await?.runs(&filter).await?.runs;
    if args.json {
        print_json(&runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        eprintln!("no runs yet; start one with `sagebrush run <project>`");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<16} {:>4}  {:<10} {:<19}  {:<8} REASON", "PROJECT", "RUN", "STATUS", "STARTED", "COMMIT");
    for run in runs {
        let commit = run.commit_sha.as_deref().map(|c| &c[..c.len().min(8)]).unwrap_or("-");
        println!(
            "{:<16} {:>4}  {:<10} {:<19}  {:<8} {}",
            printable(&run.project),
            run.number,
            run.status,
            format_time(run.created_at),
            printable(commit),
            printable(run.reason.as_deref().unwrap_or_default())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(home: &Home, args: RunRef) -> anyhow::Result<ExitCode> {
    let detail = Via::open(home).await?.run(&args.project, args.number).await?;
    if args.json {
        print_json(&detail)?;
        return Ok(ExitCode::SUCCESS);
    }
    let server::service::RunDetail { run, stages, approvals } = detail;
    println!("{} #{}  {}", run.project, run.number, run.status);
    if let Some(reason) = &run.reason {
        println!("reason:     {}", printable(reason));
    }
    println!("project:    {}", printable(&run.project_path));
    let detail = run.trigger_detail.as_deref().map(|d| format!(" {}", printable(d))).unwrap_or_default();
    let by = run.triggered_by.as_deref().map(|b| format!(" by {}", printable(b))).unwrap_or_default();
    println!("trigger:    {}{detail}{by}", run.trigger);
    println!("commit:     {}", printable(run.commit_sha.as_deref().unwrap_or("-")));
    println!("parameters: {}", printable(&serde_json::to_string(&run.parameters)?));
    println!("started:    {}", format_time(run.created_at));
    println!();
    for stage in stages {
        let took = match (stage.started_at, stage.finished_at) {
            (Some(start), Some(end)) => format!("{:.2}s", (end - start) as f64 / 1000.0),
            _ => String::new(),
        };
        println!(
            "  {:<14} {:<11} {:>8}  {}",
            stage.name,
            stage.status,
            took,
            printable(stage.reason.as_deref().unwrap_or_default())
        );
    }
    for approval in approvals {
        let model = match (&approval.model_group, approval.model_version) {
            (Some(group), Some(version)) => format!("{} v{version}", printable(group)),
            _ => "the run".to_owned(),
        };
        println!("\napproval `{}` of {model}: {:?}", approval.stage, approval.status);
        println!("  evidence: {}", printable(&approval.evidence.0.to_string()));
        if let (Some(by), Some(at)) = (&approval.decided_by, approval.decided_at) {
            let why = printable(approval.reason.as_deref().unwrap_or_default()).into_owned();
            println!("  decided by {} at {}: {why}", printable(by), format_time(at));
        } else if let Some(at) = approval.expires_at {
            println!("  rejected unless decided by {}", format_time(at));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn endpoints(home: &Home, args: EndpointsArgs) -> anyhow::Result<ExitCode> {
    let mut endpoints = Via::open(home).await?.endpoints().await?;
    if let Some(idle) = args.idle {
        let since = store::now_ms() - i64::try_from(idle.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        // Idle: no variant answered since then; an endpoint that is not served is idle too.
        endpoints.retain(|e| {
            let last = e.variants.iter().filter_map(|v| v.last_invoked_ms).max();
            last.is_none_or(|last| i64::try_from(last).unwrap_or(i64::MAX) < since)
        });
    }
    if args.json {
        print_json(&endpoints)?;
        return Ok(ExitCode::SUCCESS);
    }
    if endpoints.is_empty() {
        eprintln!("no endpoints yet; a pipeline's deploy stage creates them");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<20} {:<20} {:>7} {:>9}  {:<19}  URL", "ENDPOINT", "MODEL", "VERSION", "INSTANCES", "UPDATED");
    for e in endpoints {
        let url = e.url.unwrap_or_else(|| "(not served: start `sagebrush server`)".to_owned());
        let e = e.record;
        let (model, version) = match &e.kind {
            store::EndpointKind::Model { model_group, model_version } => {
                (printable(model_group).into_owned(), model_version.to_string())
            }
            store::EndpointKind::MultiModel { .. } => ("(multi-model)".to_owned(), "-".to_owned()),
            store::EndpointKind::Chain { .. } => ("(inference pipeline)".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<20} {:<20} {:>7} {:>9}  {:<19}  {}",
            printable(&e.name),
            model,
            version,
            e.instances,
            format_time(e.updated_at),
            printable(&url)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `delete-endpoint`: the server stops serving it, or (with none) it is forgotten here.
pub async fn delete_endpoint(home: &Home, args: DeleteEndpointArgs) -> anyhow::Result<ExitCode> {
    Via::open(home).await?.delete_endpoint(&args.name).await?;
    eprintln!("deleted endpoint {}", args.name);
    Ok(ExitCode::SUCCESS)
}

pub async fn models(home: &Home, args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let versions = Via::open(home).await?.models(args.group.as_ref()).await?;
    if args.json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    if versions.is_empty() {
        eprintln!("no models yet; a pipeline's register stage creates them");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<16} {:>7}  {:<24} {:<23} {:<8} METRICS", "GROUP", "VERSION", "ALGORITHM", "APPROVAL", "COMMIT");
    for v in versions {
        let lineage = &v.lineage.0;
        let commit = lineage["commit"].as_str().map(|c| c[..c.len().min(8)].to_owned()).unwrap_or("-".into());
        println!(
            "{:<16} {:>7}  {:<24} {:<23} {:<8} {}",
            printable(&v.model_group),
            v.version,
            printable(&v.algorithm),
            v.approval_status,
            printable(&commit),
            lineage["metrics"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `events`: what changed, oldest first.
pub async fn events(home: &Home, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let page = Via::open(home).await?.events(args.after, args.project.as_ref(), args.limit).await?;
    if args.json {
        print_json(&page.events)?;
        return Ok(ExitCode::SUCCESS);
    }
    for event in page.events {
        let kind = serde_json::to_value(event.kind)?.as_str().unwrap_or_default().to_owned();
        println!("{:>6}  {}  {kind:<16} {}", event.id, format_time(event.at), printable(&event.data.0.to_string()));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn history(home: &Home, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let history = Via::open(home).await?.history(&args.endpoint, args.at).await?;
    if args.json {
        print_json(&history)?;
        return Ok(ExitCode::SUCCESS);
    }
    if history.is_empty() {
        let at = args.at.map(format_time).unwrap_or_default();
        eprintln!("{} served nothing at {at}", args.endpoint);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<19}  {:<19}  {:<12} {:<16} {:>7} {:>6}  {:<12} {:<8} APPROVED BY",
        "FROM", "UNTIL", "VARIANT", "MODEL", "VERSION", "WEIGHT", "RUN", "COMMIT"
    );
    for stretch in history {
        let until = stretch.until.map_or_else(|| "now".to_owned(), format_time);
        if stretch.deleted || stretch.variants.is_empty() {
            let what = if stretch.deleted { "(deleted)" } else { "(no registered model)" };
            println!("{:<19}  {:<19}  {what}", format_time(stretch.from), until);
            continue;
        }
        for v in stretch.variants {
            let run = match (&v.project, v.run) {
                (Some(project), Some(number)) => format!("{} #{number}", printable(project)),
                _ => "-".to_owned(),
            };
            let commit = v.commit.as_deref().map(|c| c[..c.len().min(8)].to_owned()).unwrap_or_else(|| "-".to_owned());
            let approved = match (&v.approved_by, &v.approval_reason) {
                (Some(by), Some(why)) => format!("{}: {}", printable(by), printable(why)),
                (Some(by), None) => printable(by).into_owned(),
                _ => "-".to_owned(),
            };
            println!(
                "{:<19}  {:<19}  {:<12} {:<16} {:>7} {:>6}  {:<12} {:<8} {approved}",
                format_time(stretch.from),
                until,
                printable(&v.variant),
                printable(&v.model_group),
                v.model_version,
                v.weight,
                run,
                printable(&commit)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(home: &Home, args: GcArgs) -> anyhow::Result<ExitCode> {
    let request = server::service::GcRequest { dry_run: args.dry_run };
    let report = Via::open(home).await?.gc(&request).await?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    for run in &report.removed {
        let mut what = vec![format!("{:.1} MB of files", run.bytes as f64 / 1e6)];
        what.extend(run.model_versions.iter().map(|v| printable(v).into_owned()));
        what.extend(run.images.iter().map(|i| printable(i).into_owned()));
        println!("{verb} {} #{}: {}", printable(&run.project), run.number, what.join(", "));
    }
    for kept in &report.kept {
        println!("kept {} #{}: {}", printable(&kept.project), kept.number, printable(&kept.why));
    }
    for endpoint in &report.captures {
        println!("{verb} the capture of deleted endpoint {}", printable(endpoint));
    }
    let runs = report.removed.len();
    eprintln!("{verb} {runs} run(s), {:.1} MB", report.bytes as f64 / 1e6);
    Ok(ExitCode::SUCCESS)
}
