//! The checkout stage: the project folder itself, or a git repository at a branch or commit, recording the commit SHA.

use std::path::Path;

use super::outputs::CheckoutOutput;
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    repo: Option<&str>,
    rev: Option<&str>,
    log: &mut Log,
) -> Result<CheckoutOutput, StageFailure> {
    let source = match repo {
        None => context.project_dir.clone(),
        Some(repo) => {
            let target = context.engine.home().run_dir(&context.pipeline.name, context.run.number).join("src");
            let _ = std::fs::remove_dir_all(&target);
            // A relative repository path is relative to the project, like every other path in the pipeline file.
            let url = if Path::new(repo).is_relative() && !repo.contains("://") && !repo.contains('@') {
                context.project_dir.join(repo).display().to_string()
            } else {
                repo.to_owned()
            };
            line(log, &format!("git clone {url}")).await;
            git(&["clone", "--quiet", "--no-hardlinks", &url, &target.display().to_string()], None, log).await?;
            if let Some(rev) = rev {
                line(log, &format!("git checkout {rev}")).await;
                git(&["checkout", "--quiet", "--detach", rev], Some(&target), log).await?;
            }
            target
        }
    };
    let commit = git(&["rev-parse", "HEAD"], Some(&source), log).await.ok();
    let output = match &commit {
        Some(commit) => {
            let status = git(&["status", "--porcelain"], Some(&source), log).await.unwrap_or_default();
            let dirty = !status.is_empty();
            context.engine.store().set_run_commit(context.run.id, commit).await.map_err(StageFailure::store)?;
            line(log, &format!("commit {commit}{}", if dirty { " (with uncommitted changes)" } else { "" })).await;
            CheckoutOutput { source: source.clone(), git: true, commit: Some(commit.clone()), dirty: Some(dirty) }
        }
        None => {
            line(log, &format!("{} is not a git repository; using the folder as it is", source.display())).await;
            CheckoutOutput { source: source.clone(), git: false, commit: None, dirty: None }
        }
    };
    context.source_dir = source;
    Ok(output)
}

/// Runs `git` and returns its trimmed stdout; why it failed goes to the log too (but for a
/// `rev-parse` that only asks whether a folder is a repository).
async fn git(args: &[&str], dir: Option<&Path>, log: &mut Log) -> Result<String, StageFailure> {
    match crate::projects::git(args, dir).await {
        Ok(output) => Ok(output),
        Err(e) => {
            if args.first() != Some(&"rev-parse") {
                line(log, &e.to_string()).await;
            }
            Err(StageFailure::failed(e.to_string()))
        }
    }
}
