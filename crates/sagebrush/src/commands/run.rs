//! `up`, `server`, `run`, `retry` and `cancel`: starting, serving and stopping runs.

use std::process::ExitCode;

use anyhow::Context;
use engine::{Home, Submitted};

use crate::cli::{RetryArgs, RunArgs, RunRef, ServerArgs, UpArgs};
use crate::exit::{self, Invalid};
use crate::server::{self, Server};
use crate::{commands, progress};

/// `sagebrush up`: serve, run the pipeline, print the URLs, keep serving.
pub async fn up(home: &Home, args: UpArgs) -> anyhow::Result<ExitCode> {
    let overrides = parse_params(&args.params)?;
    let server = Server::bind(home, args.server.listen, true).await?.with_health_checks(args.server.health_interval);
    let engine = server.engine.clone();
    let url = server.url.clone();
    warn_if_exposed(&args.server);
    restore(&engine).await;
    let serving = tokio::spawn(server.serve(shutdown_signal()));
    eprintln!("sagebrush is serving at {url} (state in {})", home.root().display());
    let submitted = engine.submit(&args.project, &overrides, "manual").await?;
    announce(&submitted);
    let run = progress::follow(engine.store(), submitted.run.id, false).await?;
    print_outcome(&run);
    print_endpoints(&engine, &url).await?;
    eprintln!("\nServing until Ctrl-C. Run again with `sagebrush run {}`.", args.project.display());
    let served = serving.await?;
    engine.shutdown().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// `sagebrush server`: serve the API and every recorded endpoint.
pub async fn server(home: &Home, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let server = Server::bind(home, args.listen, true).await?.with_health_checks(args.health_interval);
    warn_if_exposed(&args);
    restore(&server.engine).await;
    eprintln!("sagebrush is serving at {} (state in {}); Ctrl-C to stop", server.url, home.root().display());
    print_endpoints(&server.engine, &server.url).await?;
    let engine = server.engine.clone();
    let served = server.serve(shutdown_signal()).await;
    engine.shutdown().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// `sagebrush run`: through the running server if there is one, else in this process.
pub async fn run(home: &Home, args: RunArgs) -> anyhow::Result<ExitCode> {
    let overrides = parse_params(&args.params)?;
    if let Some(url) = server::running(home).await {
        let project = args.project.canonicalize().unwrap_or(args.project.clone());
        let body = serde_json::json!({ "project": project, "parameters": overrides });
        let submitted = post(&format!("{url}/api/runs"), &body).await?;
        return finish(home, submitted, args.json).await;
    }
    // No server: a private listener serves the test endpoints while the run lasts.
    let server = Server::bind(home, "127.0.0.1:0".parse()?, false).await?;
    let engine = server.engine.clone();
    let serving = tokio::spawn(server.serve(std::future::pending()));
    let submitted = engine.submit(&args.project, &overrides, "manual").await?;
    let code = follow_submitted(&engine, submitted, args.json).await?;
    if !args.json {
        eprintln!("No server is running, so the endpoints stop with this command; `sagebrush server` serves them.");
    }
    serving.abort();
    engine.shutdown().await;
    Ok(code)
}

/// `sagebrush retry`.
pub async fn retry(home: &Home, args: RetryArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = server::running(home).await {
        let body = serde_json::json!({ "from": args.from });
        let submitted = post(&format!("{url}/api/runs/{}/{}/retry", args.project, args.number), &body).await?;
        return finish(home, submitted, args.json).await;
    }
    let server = Server::bind(home, "127.0.0.1:0".parse()?, false).await?;
    let engine = server.engine.clone();
    let serving = tokio::spawn(server.serve(std::future::pending()));
    let submitted = engine.retry(&args.project, args.number, args.from.as_ref()).await?;
    let code = follow_submitted(&engine, submitted, args.json).await?;
    serving.abort();
    engine.shutdown().await;
    Ok(code)
}

/// `sagebrush cancel`: flags the run; whichever process runs it stops it.
pub async fn cancel(home: &Home, args: RunRef) -> anyhow::Result<ExitCode> {
    let store = commands::open_store(home).await?;
    let run = store.run(&args.project, args.number).await?;
    if !store.request_cancel(run.id).await? {
        anyhow::bail!(Invalid(format!("run {} #{} already ended ({})", run.project, run.number, run.status)));
    }
    eprintln!(
        "cancel requested for {} #{}; `sagebrush show {} {}` shows when it stopped",
        run.project, run.number, run.project, run.number
    );
    Ok(ExitCode::SUCCESS)
}

async fn finish(home: &Home, submitted: serde_json::Value, json: bool) -> anyhow::Result<ExitCode> {
    let run_id = submitted["run"]["id"].as_i64().context("the server's answer has no run id")?;
    let store = commands::open_store(home).await?;
    let run = store.run_by_id(run_id).await?;
    if !json {
        eprintln!("{} #{} started on the server", run.project, run.number);
    }
    let run = progress::follow(&store, run_id, json).await?;
    report(&store, &run, json).await
}

async fn follow_submitted(engine: &engine::Engine, submitted: Submitted, json: bool) -> anyhow::Result<ExitCode> {
    if !json {
        announce(&submitted);
    }
    let run = progress::follow(engine.store(), submitted.run.id, json).await?;
    report(engine.store(), &run, json).await
}

async fn report(store: &store::Store, run: &store::RunRecord, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        let stages = store.stages(run.id).await?;
        commands::print_json(&serde_json::json!({ "run": run, "stages": stages }))?;
    } else {
        print_outcome(run);
    }
    Ok(exit::for_status(&run.status))
}

fn announce(submitted: &Submitted) {
    let run = &submitted.run;
    eprintln!("{} #{}: {}", run.project, run.number, submitted.stages.join(" -> "));
}

fn print_outcome(run: &store::RunRecord) {
    match run.status.as_str() {
        "succeeded" => eprintln!("{} #{} succeeded", run.project, run.number),
        status => eprintln!(
            "{} #{} {status}: {}\n  see `sagebrush logs {} {}`",
            run.project,
            run.number,
            run.reason.as_deref().unwrap_or("no reason recorded"),
            run.project,
            run.number
        ),
    }
}

async fn print_endpoints(engine: &engine::Engine, url: &str) -> anyhow::Result<()> {
    let endpoints = engine.store().endpoints().await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    eprintln!("\nEndpoints:");
    for endpoint in &endpoints {
        eprintln!(
            "  {:<20} {url}/endpoints/{}/invocations  ({} v{})",
            endpoint.name, endpoint.name, endpoint.model_group, endpoint.model_version
        );
    }
    let example = endpoints.iter().find(|e| e.name.ends_with("prod")).unwrap_or(&endpoints[0]);
    eprintln!(
        "\nTry it:\n  curl -s -H 'Content-Type: text/csv' --data-binary $'5.1,3.5,1.4,0.2\\n6.7,3.0,5.2,2.3' {url}/endpoints/{}/invocations",
        example.name
    );
    Ok(())
}

async fn restore(engine: &engine::Engine) {
    for (name, result) in engine.restore_endpoints().await {
        if let Err(e) = result {
            eprintln!("warning: endpoint {name} could not be brought back: {e}");
        }
    }
}

fn warn_if_exposed(args: &ServerArgs) {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {}, reachable from other machines; the API has no authentication yet",
            args.listen
        );
    }
}

fn parse_params(params: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    params.iter().map(|p| pipeline::parse_override(p).map_err(anyhow::Error::from)).collect()
}

async fn post(url: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let response = client.post(url).json(body).send().await.with_context(|| format!("calling the server at {url}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    let message = answer["error"]["message"].as_str();
    if status.is_client_error() {
        anyhow::bail!(Invalid(message.unwrap_or("the server refused the request").to_owned()));
    }
    if !status.is_success() {
        anyhow::bail!("the server answered {status}: {}", message.unwrap_or(""));
    }
    Ok(answer)
}

/// Ctrl-C, or SIGTERM from a service manager: either stops serving gracefully.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    eprintln!("\nstopping");
}
