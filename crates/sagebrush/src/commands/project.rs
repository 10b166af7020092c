//! `project add|list|remove`: the projects a server may run, through the server when one runs.

use std::process::ExitCode;

use engine::Home;

use crate::cli::ProjectCommand;
use crate::commands::print_json;
use crate::via::Via;

pub async fn project(home: &Home, command: ProjectCommand) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    match command {
        ProjectCommand::Add { folder } => {
            let folder = folder.canonicalize().unwrap_or(folder);
            let added = via.add_project(&folder).await?;
            eprintln!(
                "added project {} ({}); run it with `sagebrush run {}`",
                added.name,
                added.path,
                folder.display()
            );
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
