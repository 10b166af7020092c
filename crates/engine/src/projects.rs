//! Projects a server was given: a folder with a `sagebrush.toml`, recorded under its pipeline's name.
//!
//! The API starts runs of these projects only, by name, so a caller cannot make the server open
//! (and report on) any other file.

use std::path::{Path, PathBuf};

use names::Name;
use store::ProjectRecord;

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

    /// Starts a run of a project added earlier.
    pub async fn submit_project(
        &self,
        project: &Name,
        overrides: &[(String, String)],
        trigger: &str,
    ) -> Result<Submitted, Error> {
        let record = self.store().project(project).await.map_err(|e| match e {
            store::Error::NotFound(_) => Error::UnknownProject(project.clone()),
            other => other.into(),
        })?;
        self.submit(Path::new(&record.path), overrides, trigger).await
    }
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
