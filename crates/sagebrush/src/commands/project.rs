//! `project add|list|remove`: the projects a server may run, through the server when one runs.

use std::process::ExitCode;

use engine::Home;

use crate::cli::ProjectCommand;
use crate::commands::print_json;
use crate::via::Via;
use server::service::AddProject;

/// A git repository when it looks like one (a URL, `user@host:path`) or a branch is named; else a folder.
fn add_request(source: &str, branch: Option<String>) -> AddProject {
    let url = source.contains("://") || (source.contains('@') && source.contains(':'));
    if url || branch.is_some() {
        let repo = if url {
            source.to_owned()
        } else {
            let path = std::path::Path::new(source);
            path.canonicalize().unwrap_or(path.to_owned()).display().to_string()
        };
        return AddProject { repo: Some(repo), branch, path: None };
    }
    let folder = std::path::Path::new(source);
    let folder = folder.canonicalize().unwrap_or(folder.to_owned());
    AddProject { path: Some(folder.display().to_string()), ..AddProject::default() }
}

pub async fn project(home: &Home, command: ProjectCommand) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    match command {
        ProjectCommand::Add { source, branch } => {
            let added = via.add_project(&add_request(&source, branch)).await?;
            match &added.repo {
                Some(repo) => eprintln!(
                    "added project {} from {repo} (branch {}); run its newest commit with `sagebrush run {}`",
                    added.name,
                    added.branch.as_deref().unwrap_or_default(),
                    added.name
                ),
                None => eprintln!(
                    "added project {} ({}); run it with `sagebrush run {}`",
                    added.name, added.path, added.name
                ),
            }
        }
        ProjectCommand::List { json } => {
            let projects = via.projects().await?;
            if json {
                print_json(&projects)?;
                return Ok(ExitCode::SUCCESS);
            }
            if projects.is_empty() {
                eprintln!("no projects yet; add one with `sagebrush project add <folder>`");
            }
            for project in projects {
                println!("{:<24} {}", names::printable(&project.name), names::printable(&project.path));
            }
        }
        ProjectCommand::Remove { name } => {
            via.remove_project(&name).await?;
            eprintln!("removed project {name}; its runs, models and endpoints stay");
        }
    }
    Ok(ExitCode::SUCCESS)
}
