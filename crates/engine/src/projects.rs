//! Projects a server was given: a folder with a `sagebrush.toml`, or a branch of a git repository
//! (of which the server keeps a mirror), recorded under its pipeline's name.
//!
//! A git project's runs each build one commit: the branch's head when the run is submitted (or the
//! commit it is asked for), its pipeline file read from that commit, its sources checked out
//! from the mirror when it starts.
//!
//! The API starts runs of these projects only, by name, so a caller cannot make the server open
//! (and report on) any other file.

use std::path::{Path, PathBuf};

use names::Name;
use store::{ProjectRecord, Trigger};

use crate::run::Source;
use crate::{Engine, Error, Submitted, error::io_error};

/// The name every pipeline file has.
pub const PIPELINE_FILE: &str = "sagebrush.toml";

impl Engine {
    /// Checks the project at `path` (a folder, or its `sagebrush.toml`) and records it under its pipeline's name.
    pub async fn add_project(&self, path: &Path) -> Result<ProjectRecord, Error> {
        let (dir, file) = locate(path)?;
        let pipeline = pipeline::load(&file)?;
        Ok(self.store().add_project(&pipeline.name, &dir.display().to_string()).await?)
    }

    /// Records the project on `branch` of the git repository at `url`: mirrored under the home,
    /// named by the pipeline file on that branch. Adding it again fetches it again.
    pub async fn add_git_project(&self, url: &str, branch: &str) -> Result<ProjectRecord, Error> {
        if url.starts_with('-') || branch.starts_with('-') || branch.contains("..") {
            return Err(Error::Invalid(format!("`{}` is not a repository and branch", names::excerpt(url, 80))));
        }
        let projects = self.home().root().join("projects");
        std::fs::create_dir_all(&projects).map_err(io_error(&projects))?;
        let adding = projects.join(format!(".adding-{}", runtime::unique_suffix()));
        let target = adding.display().to_string();
        let named = async {
            git(&["clone", "--quiet", "--mirror", "--", url, &target], None).await?;
            let head = format!("refs/heads/{branch}^{{commit}}");
            let commit = git(&["rev-parse", "--verify", "--quiet", &head], Some(&adding))
                .await
                .map_err(|_| Error::Invalid(format!("{url} has no branch {branch}")))?;
            Ok::<_, Error>(pipeline_at(&adding, &commit).await?.name)
        };
        let name = match named.await {
            Ok(name) => name,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&adding);
                return Err(e);
            }
        };
        let mirror = self.home().project_mirror(&name);
        let _ = std::fs::remove_dir_all(&mirror);
        std::fs::rename(&adding, &mirror).map_err(io_error(&mirror))?;
        Ok(self.store().add_project_from(&name, &mirror.display().to_string(), Some((url, branch))).await?)
    }

    /// The mirror of a git project; `None` for a folder project.
    pub(crate) async fn git_project(&self, project: &Name) -> Result<Option<PathBuf>, Error> {
        match self.store().project(project).await {
            Ok(record) if record.repo.is_some() => Ok(Some(PathBuf::from(record.path))),
            Ok(_) | Err(store::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a run of a project added earlier; for a git project, of its branch's newest commit.
    pub async fn submit_project(
        &self,
        project: &Name,
        overrides: &[(String, String)],
        trigger: &Trigger,
    ) -> Result<Submitted, Error> {
        let record = self.store().project(project).await.map_err(|e| match e {
            store::Error::NotFound(_) => Error::UnknownProject(project.clone()),
            other => other.into(),
        })?;
        let source = match &record.branch {
            Some(branch) => {
                let mirror = PathBuf::from(&record.path);
                git(&["fetch", "--quiet", "--prune", "origin"], Some(&mirror)).await?;
                let commit =
                    git(&["rev-parse", "--verify", &format!("refs/heads/{branch}^{{commit}}")], Some(&mirror)).await?;
                Source::Git { mirror, commit }
            }
            None => Source::Folder(PathBuf::from(&record.path)),
        };
        self.submit_inner(source, overrides, trigger, None).await
    }

    /// A project's pipeline as its file is now (a git project's: its branch head's): what a run
    /// started now would read, e.g. its parameters for a form.
    pub async fn project_pipeline(&self, project: &Name) -> Result<pipeline::Pipeline, Error> {
        let record = self.store().project(project).await.map_err(|e| match e {
            store::Error::NotFound(_) => Error::UnknownProject(project.clone()),
            other => other.into(),
        })?;
        pipeline_of(&record).await
    }

    /// A git project's push trigger and its branch, as its branch's newest fetched commit declares
    /// them: a push cannot change the secret its own delivery is checked with.
    pub async fn push_trigger(&self, project: &Name) -> Result<(pipeline::PushTrigger, String), Error> {
        let record = self.store().project(project).await.map_err(|e| match e {
            store::Error::NotFound(_) => Error::UnknownProject(project.clone()),
            other => other.into(),
        })?;
        let Some(branch) = record.branch else {
            return Err(Error::Invalid(format!(
                "{project} is a folder, not a git repository; pushes start runs of projects added from git"
            )));
        };
        let pipeline = pipeline_at(Path::new(&record.path), &format!("refs/heads/{branch}")).await?;
        match pipeline.triggers.push {
            Some(push) => Ok((push, branch)),
            None => Err(Error::Invalid(format!(
                "{project} takes no push webhooks; add [triggers.push] with its `secret` to sagebrush.toml"
            ))),
        }
    }

    /// Starts a run of a git project at `commit`, fetched first (a webhook names a commit just pushed).
    pub async fn submit_commit(&self, project: &Name, commit: &str, trigger: &Trigger) -> Result<Submitted, Error> {
        let Some(mirror) = self.git_project(project).await? else {
            return Err(Error::Invalid(format!("{project} is not a git project")));
        };
        if commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!("`{}` is not a commit id", names::excerpt(commit, 64))));
        }
        git(&["fetch", "--quiet", "--prune", "origin"], Some(&mirror)).await?;
        let commit = git(&["rev-parse", "--verify", &format!("{commit}^{{commit}}")], Some(&mirror))
            .await
            .map_err(|_| Error::Invalid(format!("{project} has no commit {commit}, even after a fetch")))?;
        self.submit_inner(Source::Git { mirror, commit }, &[], trigger, None).await
    }
}

/// A project's pipeline file as it is now: a folder's, or a git project's branch head's.
pub(crate) async fn pipeline_of(project: &ProjectRecord) -> Result<pipeline::Pipeline, Error> {
    match &project.branch {
        Some(branch) => pipeline_at(Path::new(&project.path), &format!("refs/heads/{branch}")).await,
        None => Ok(pipeline::load(&locate(Path::new(&project.path))?.1)?),
    }
}

/// The pipeline file of `commit` in a repository, read without checking it out.
pub(crate) async fn pipeline_at(repository: &Path, commit: &str) -> Result<pipeline::Pipeline, Error> {
    let text = git(&["show", &format!("{commit}:{PIPELINE_FILE}")], Some(repository))
        .await
        .map_err(|_| Error::Invalid(format!("commit {commit} has no {PIPELINE_FILE} at the top of the repository")))?;
    // Errors name the commit's file, e.g. `3f2a9c1e5b7d:sagebrush.toml:4:9`.
    let shown = Path::new(&format!("{}:{PIPELINE_FILE}", &commit[..commit.len().min(12)])).to_owned();
    Ok(pipeline::parse(&shown, text)?)
}

/// Checks `commit` out of a mirror into `target` (made anew).
pub(crate) async fn check_out(mirror: &Path, commit: &str, target: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(target);
    let into = target.display().to_string();
    git(&["clone", "--quiet", "--shared", "--no-checkout", "--", &mirror.display().to_string(), &into], None).await?;
    git(&["checkout", "--quiet", "--detach", commit], Some(target)).await?;
    Ok(())
}

/// Runs `git` (never asking for a password) and returns its trimmed output, or its error as an [`Error`].
pub(crate) async fn git(args: &[&str], dir: Option<&Path>) -> Result<String, Error> {
    let mut command = tokio::process::Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let output = command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Invalid(format!("could not run git ({e}); install git and try again")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let command = args.first().copied().unwrap_or_default();
        return Err(Error::Invalid(format!("git {command} failed: {}", names::excerpt(stderr.trim(), 400))));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A project is a folder holding `sagebrush.toml`, or that file itself; `(folder, file)`, canonical.
///
/// Only a regular file named `sagebrush.toml` is ever read, so a path to any other file (or a
/// link to one) is refused without opening it.
pub(crate) fn locate(project: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let not_a_project = || {
        Error::Invalid(format!(
            "{} is not a project: a project is a folder with a {PIPELINE_FILE} (see examples/iris)",
            project.display()
        ))
    };
    let dir = if project.file_name().is_some_and(|n| n == PIPELINE_FILE) && !project.is_dir() {
        project.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
    } else if project.is_dir() {
        project.to_path_buf()
    } else {
        return Err(not_a_project());
    };
    let dir = dir.canonicalize().map_err(io_error(&dir))?;
    let file = dir.join(PIPELINE_FILE);
    match std::fs::symlink_metadata(&file) {
        Ok(meta) if meta.is_file() => Ok((dir, file)),
        _ => Err(not_a_project()),
    }
}
