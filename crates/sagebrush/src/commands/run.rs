//! `up`, `server`, `run`, `retry` and `cancel`: starting, serving and stopping runs.

use std::process::ExitCode;

use engine::{Home, Submitted};

use names::Name;

use server::Server;
use server::service::Submitted as SubmittedView;

use crate::cli::{DecideArgs, RetryArgs, RunArgs, RunRef, ServerArgs, UpArgs};
use crate::client::Client;
use crate::commands;
use crate::exit;
use crate::progress::{self, Source};
use crate::via::Via;

/// `sagebrush up`: serve, run the pipeline, print the URLs, keep serving.
pub async fn up(home: &Home, args: UpArgs) -> anyhow::Result<ExitCode> {
    let overrides = parse_params(&args.params)?;
    let server = Server::bind(home, &args.server.config(), true)
        .await?
        .with_queue(args.server.max_runs)
        .with_triggers()
        .with_health_checks(args.server.health_interval);
    let engine = server.engine.clone();
    let url = server.url.clone();
    let project = engine.add_project(&args.project).await?;
    let name = Name::parse(&project.name)?;
    restore(&engine).await;
    let serving = tokio::spawn(server.serve(shutdown_signal()));
    eprintln!("sagebrush is serving at {url} (state in {})", home.root().display());
    eprintln!("dashboard: {url}/");
    let submitted = engine.submit_project(&name, &overrides, &store::Trigger::manual("local")).await?;
    announce(&submitted);
    let followed = progress::follow(&Source::Local { engine: &engine, run_id: submitted.run.id }, false).await;
    let run = match followed {
        Ok((run, _)) => run,
        Err(e) => {
            engine.shutdown().await;
            return Err(e);
        }
    };
    print_outcome(&run);
    print_endpoints(&engine, &url).await?;
    eprintln!(
        "\nServing until Ctrl-C; the dashboard is {url}/. Run again with `sagebrush run {}`.",
        args.project.display()
    );
    let served = serving.await?;
    engine.shutdown().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// `sagebrush server`: serve the API and every recorded endpoint.
pub async fn server(home: &Home, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let server = Server::bind(home, &args.config(), true)
        .await?
        .with_queue(args.max_runs)
        .with_triggers()
        .with_health_checks(args.health_interval);
    restore(&server.engine).await;
    eprintln!("sagebrush is serving at {} (state in {}); Ctrl-C to stop", server.url, home.root().display());
    eprintln!("dashboard: {}/", server.url);
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
    // Not a folder here but a project's name: a project added earlier (a git project, say).
    let by_name = (!args.project.exists()).then(|| args.project.to_str().and_then(|n| Name::parse(n).ok())).flatten();
    if let Some(client) = crate::client::connect(home).await? {
        let name = match by_name {
            Some(name) => name.to_string(),
            None => {
                // The server runs only projects it was given: give it this one unless it has it
                // (adding takes an admin; running one it has, an operator).
                let folder = args.project.canonicalize().unwrap_or(args.project.clone());
                let known: Vec<store::ProjectRecord> = client.get("/projects").await?;
                match known.into_iter().find(|p| std::path::Path::new(&p.path) == folder) {
                    Some(project) => project.name,
                    None => {
                        let added: store::ProjectRecord =
                            client.post("/projects", &serde_json::json!({ "path": folder })).await?;
                        added.name
                    }
                }
            }
        };
        let body = serde_json::json!({ "project": name, "parameters": overrides });
        let submitted: SubmittedView = client.post("/runs", &body).await?;
        return follow_remote(client, submitted, args.json).await;
    }
    // No server: a private listener serves the test endpoints while the run lasts.
    let server = Server::bind(home, &server::Config::private(), false).await?;
    let engine = server.engine.clone();
    let serving = tokio::spawn(server.serve(std::future::pending()));
    let submitted = match &by_name {
        Some(name) => engine.submit_project(name, &overrides, &store::Trigger::manual("local")).await,
        None => engine.submit(&args.project, &overrides, &store::Trigger::manual("local")).await,
    }
    .map_err(server::ServiceError::from);
    let status = submitted.as_ref().map_or_else(|e| e.status, |_| axum::http::StatusCode::CREATED);
    server::Service::new(engine.clone()).record(&server::auth::Caller::local(), "POST /api/v1/runs", status).await;
    let submitted = submitted?;
    let code = follow_local(&engine, submitted, args.json).await;
    if !args.json {
        eprintln!("No server is running, so the endpoints stop with this command; `sagebrush server` serves them.");
    }
    serving.abort();
    engine.shutdown().await;
    code
}

/// `sagebrush retry`.
pub async fn retry(home: &Home, args: RetryArgs) -> anyhow::Result<ExitCode> {
    if let Some(client) = crate::client::connect(home).await? {
        let body = serde_json::json!({ "from": args.from });
        let submitted = client.post(&format!("/runs/{}/{}/retry", args.project, args.number), &body).await?;
        return follow_remote(client, submitted, args.json).await;
    }
    let server = Server::bind(home, &server::Config::private(), false).await?;
    let engine = server.engine.clone();
    let serving = tokio::spawn(server.serve(std::future::pending()));
    let submitted = engine.retry(&args.project, args.number, args.from.as_ref(), "local").await?;
    let code = follow_local(&engine, submitted, args.json).await;
    serving.abort();
    engine.shutdown().await;
    code
}

/// `sagebrush approve` and `reject`. Approved with no server running, the run goes on here.
pub async fn decide(home: &Home, args: DecideArgs, approve: bool) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    let decision = server::service::Decision { reason: args.reason.clone() };
    let detail = via.decide(&args.project, args.number, approve, &decision).await?;
    let run = &detail.run;
    if approve && !via.is_server() {
        drop(via);
        let server = Server::bind(home, &server::Config::private(), false).await?.with_queue(Some(1));
        let engine = server.engine.clone();
        let serving = tokio::spawn(server.serve(std::future::pending()));
        if !args.json {
            eprintln!("approved {} #{}; it goes on here", run.project, run.number);
        }
        let followed = progress::follow(&Source::Local { engine: &engine, run_id: run.id }, args.json).await;
        serving.abort();
        engine.shutdown().await;
        let (run, stages) = followed?;
        return report(&run, &stages, args.json);
    }
    if args.json {
        commands::print_json(&detail)?;
    } else if approve {
        eprintln!("approved {} #{}; it goes on on the server", run.project, run.number);
    } else {
        eprintln!("rejected {} #{}: {}", run.project, run.number, run.reason.as_deref().unwrap_or("rejected"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sagebrush cancel`: the server stops the run if it runs it; otherwise the run is flagged for whichever process does.
pub async fn cancel(home: &Home, args: RunRef) -> anyhow::Result<ExitCode> {
    let detail = Via::open(home).await?.cancel(&args.project, args.number).await?;
    let (project, number) = (&detail.run.project, detail.run.number);
    if args.json {
        commands::print_json(&serde_json::json!({ "project": project, "number": number, "cancel_requested": true }))?;
    } else {
        eprintln!(
            "cancel requested for {project} #{number}; `sagebrush show {project} {number}` shows when it stopped"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Follows a run the server started (the answer of `POST /api/v1/runs`) until it ends.
async fn follow_remote(client: Client, submitted: SubmittedView, json: bool) -> anyhow::Result<ExitCode> {
    let run = submitted.run;
    if !json {
        eprintln!("{} #{} started on the server", run.project, run.number);
    }
    let source = Source::Remote { client, project: Name::parse(&run.project)?, number: run.number };
    let (run, stages) = progress::follow(&source, json).await?;
    report(&run, &stages, json)
}

async fn follow_local(engine: &engine::Engine, submitted: Submitted, json: bool) -> anyhow::Result<ExitCode> {
    if !json {
        announce(&submitted);
    }
    let (run, stages) = progress::follow(&Source::Local { engine, run_id: submitted.run.id }, json).await?;
    report(&run, &stages, json)
}

fn report(run: &store::RunRecord, stages: &[store::StageRecord], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        commands::print_json(&serde_json::json!({ "run": run, "stages": stages }))?;
    } else {
        print_outcome(run);
    }
    Ok(exit::for_status(run.status))
}

fn announce(submitted: &Submitted) {
    let run = &submitted.run;
    eprintln!("{} #{}: {}", run.project, run.number, submitted.stages.join(" -> "));
}

fn print_outcome(run: &store::RunRecord) {
    match run.status.as_str() {
        "succeeded" => eprintln!("{} #{} succeeded", run.project, run.number),
        "waiting" => eprintln!(
            "{} #{} waits for an approval: `sagebrush show {} {}` has the evidence; \
             `sagebrush approve {} {} --reason ...` lets it go on (or `reject`)",
            run.project, run.number, run.project, run.number, run.project, run.number
        ),
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
            "  {:<20} {url}/endpoints/{}/invocations  ({})",
            endpoint.name,
            endpoint.name,
            endpoint.kind.serves()
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

fn parse_params(params: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    params.iter().map(|p| pipeline::parse_override(p).map_err(anyhow::Error::from)).collect()
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
