//! `project add|list|remove`: the projects a server may run, through the server when one runs.

use std::process::ExitCode;

use engine::Home;

use crate::cli::ProjectCommand;
use crate::client::Client;
use crate::commands::print_json;

/// Where the operation is carried out: by the running server, or (with none) in this process.
enum Via {
    Server(Client),
    Local(engine::Engine),
}

pub async fn project(home: &Home, command: ProjectCommand) -> anyhow::Result<ExitCode> {
    let via = match crate::server::running(home).await {
        Some(url) => Via::Server(Client::new(&url)?),
        None => Via::Local(engine::Engine::open(home.clone(), router::Router::new(), String::new()).await?),
    };
    match command {
        ProjectCommand::Add { folder } => {
            let folder = folder.canonicalize().unwrap_or(folder);
            let added = match &via {
                Via::Server(client) => client.post("/api/projects", &serde_json::json!({ "path": folder })).await?,
                Via::Local(engine) => serde_json::to_value(engine.add_project(&folder).await?)?,
            };
            eprintln!(
                "added project {} ({}); run it with `sagebrush run {}`",
                added["name"].as_str().unwrap_or("?"),
                added["path"].as_str().unwrap_or("?"),
                folder.display()
            );
        }
        ProjectCommand::List { json } => {
            let projects = match &via {
                Via::Server(client) => client.get("/api/projects").await?,
                Via::Local(engine) => serde_json::to_value(engine.store().projects().await?)?,
            };
            if json {
                print_json(&projects)?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows = projects.as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                eprintln!("no projects yet; add one with `sagebrush project add <folder>`");
            }
            for row in rows {
                let text = |key: &str| names::printable(row[key].as_str().unwrap_or("")).into_owned();
                println!("{:<24} {}", text("name"), text("path"));
            }
        }
        ProjectCommand::Remove { name } => {
            match &via {
                Via::Server(client) => {
                    client.delete(&format!("/api/projects/{name}")).await?;
                }
                Via::Local(engine) => {
                    if !engine.store().remove_project(&name).await? {
                        return Err(engine::Error::UnknownProject(name).into());
                    }
                }
            }
            eprintln!("removed project {name}; its runs, models and endpoints stay");
        }
    }
    Ok(ExitCode::SUCCESS)
}
