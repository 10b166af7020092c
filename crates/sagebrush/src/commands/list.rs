//! `runs`, `show`, `endpoints` and `models`: tables for people, `--json` for scripts.

use std::process::ExitCode;

use engine::Home;
use names::printable;

use crate::cli::{DeleteEndpointArgs, EndpointsArgs, ModelsArgs, RunRef, RunsArgs};
use crate::commands::{format_time, open_store, print_json};

pub async fn runs(home: &Home, args: RunsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(home).await?;
    let runs = store.runs(args.project.as_deref(), args.limit).await?;
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
    let store = open_store(home).await?;
    let run = store.run(&args.project, args.number).await?;
    let stages = store.stages(run.id).await?;
    if args.json {
        print_json(&serde_json::json!({ "run": run, "stages": stages }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} #{}  {}", run.project, run.number, run.status);
    if let Some(reason) = &run.reason {
        println!("reason:     {}", printable(reason));
    }
    println!("project:    {}", printable(&run.project_path));
    println!("trigger:    {}{}", run.trigger, run.retry_of.map(|n| format!(" of #{n}")).unwrap_or_default());
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
    Ok(ExitCode::SUCCESS)
}

pub async fn endpoints(home: &Home, args: EndpointsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(home).await?;
    let mut endpoints = store.endpoints().await?;
    let server = crate::server::running(home).await;
    let live = match &server {
        Some(url) => live_variants(url).await,
        None => serde_json::Map::new(),
    };
    if let Some(idle) = args.idle {
        let since = store::now_ms() - i64::try_from(idle.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        // Idle: no variant answered since then; an endpoint that is not served is idle too.
        endpoints.retain(|e| {
            let last = live
                .get(&e.name)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v["last_invoked_ms"].as_i64())
                .max();
            last.is_none_or(|last| last < since)
        });
    }
    if args.json {
        let rows: Vec<serde_json::Value> = endpoints
            .iter()
            .map(|e| {
                let mut value = serde_json::to_value(e).unwrap_or_default();
                value["url"] = server
                    .as_ref()
                    .map(|url| format!("{url}/endpoints/{}/invocations", e.name).into())
                    .unwrap_or(serde_json::Value::Null);
                value["variants"] = live.get(&e.name).cloned().unwrap_or_else(|| serde_json::json!([]));
                value
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if endpoints.is_empty() {
        eprintln!("no endpoints yet; a pipeline's deploy stage creates them");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<20} {:<20} {:>7} {:>9}  {:<19}  URL", "ENDPOINT", "MODEL", "VERSION", "INSTANCES", "UPDATED");
    for e in endpoints {
        let url = server
            .as_ref()
            .map(|url| format!("{url}/endpoints/{}/invocations", e.name))
            .unwrap_or_else(|| "(not served: start `sagebrush server`)".to_owned());
        println!(
            "{:<20} {:<20} {:>7} {:>9}  {:<19}  {}",
            printable(&e.name),
            printable(&e.model_group),
            e.model_version,
            e.instances,
            format_time(e.updated_at),
            printable(&url)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Each served endpoint's variants with their weights and counters, from the running server.
async fn live_variants(server: &str) -> serde_json::Map<String, serde_json::Value> {
    let fetched = async {
        let client = reqwest::Client::builder().no_proxy().build().ok()?;
        let rows: Vec<serde_json::Value> =
            client.get(format!("{server}/api/endpoints")).send().await.ok()?.json().await.ok()?;
        Some(
            rows.into_iter()
                .filter_map(|mut row| Some((row["name"].as_str()?.to_owned(), row["variants"].take())))
                .collect(),
        )
    };
    fetched.await.unwrap_or_default()
}

pub async fn delete_endpoint(home: &Home, args: DeleteEndpointArgs) -> anyhow::Result<ExitCode> {
    let deleted = match crate::server::running(home).await {
        // The server serves it: only it can stop serving it.
        Some(url) => {
            let client = reqwest::Client::builder().no_proxy().build()?;
            let response = client.delete(format!("{url}/api/endpoints/{}", args.name)).send().await?;
            response.status().is_success()
        }
        None => {
            let engine = engine::Engine::open(home.clone(), router::Router::new(), String::new()).await?;
            engine.delete_endpoint(&args.name).await?
        }
    };
    if deleted {
        eprintln!("deleted endpoint {}", args.name);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no endpoint {}; `sagebrush endpoints` lists them", args.name);
        Ok(ExitCode::from(1))
    }
}

pub async fn models(home: &Home, args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(home).await?;
    let versions = store.model_versions(args.group.as_deref()).await?;
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
            printable(&v.approval_status),
            printable(&commit),
            lineage["metrics"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
