//! Retention: each project keeps its newest `[pipeline] keep_runs` ended runs (50 by default).
//! Older ones go with their records, logs, work folders, stored models and the images their build
//! stages pushed to the local registry, unless something still uses them: an endpoint they
//! deployed, a model version an endpoint serves or that was approved. Runs that have not ended
//! (queued, running, waiting for an approval) are never touched. Capture folders of endpoints that
//! no longer exist go too.
//!
//! Records go first, in one transaction that checks again what is in use, then the files of the
//! runs it removed: a crash in between leaves files nothing points at, never a run whose files
//! are gone.

use std::collections::BTreeMap;
use std::path::Path;

use names::Name;
use serde::{Deserialize, Serialize};

use crate::projects::locate;
use crate::stages::outputs::ImageOutput;
use crate::{Engine, Error};

/// What a collection removed (or, in a dry run, would remove) and what it kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcReport {
    pub dry_run: bool,
    pub removed: Vec<GcRun>,
    /// Runs past their project's `keep_runs` that something still uses.
    pub kept: Vec<GcKept>,
    /// Capture folders of endpoints that no longer exist.
    pub captures: Vec<String>,
    /// Bytes of files freed, or that would be.
    pub bytes: u64,
}

/// A run that goes, with what goes with it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcRun {
    pub project: String,
    pub number: i64,
    /// `group vN` of each model version it registered.
    pub model_versions: Vec<String>,
    /// The images its build stages pushed.
    pub images: Vec<String>,
    /// Bytes of its logs, work folder and stored artifacts.
    pub bytes: u64,
}

/// A run past its project's `keep_runs` that stays, and why.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcKept {
    pub project: String,
    pub number: i64,
    pub why: String,
}

impl Engine {
    /// Removes every project's runs past its `keep_runs` that nothing uses; with `dry_run`, only
    /// says what would go.
    pub async fn gc(&self, dry_run: bool) -> Result<GcReport, Error> {
        let mut report = GcReport { dry_run, ..GcReport::default() };
        for project in self.store().projects_with_runs().await? {
            let Ok(name) = Name::parse(&project) else { continue };
            let keep = match self.keep_runs(&name).await {
                Ok(keep) => keep,
                // An unreadable file says nothing of how many to keep: keep them all.
                Err(e) => {
                    tracing::warn!("retention of {name}: {e}; nothing of it is removed");
                    continue;
                }
            };
            self.collect_project(&name, keep, &mut report).await?;
        }
        self.collect_captures(&mut report).await?;
        Ok(report)
    }

    /// Retention of one project after one of its runs ended, in the process that runs the queue.
    pub(crate) async fn retain(&self, project: &str) {
        let Ok(name) = Name::parse(project) else { return };
        let collected = async {
            let keep = self.keep_runs(&name).await?;
            let mut report = GcReport::default();
            self.collect_project(&name, keep, &mut report).await?;
            Ok::<_, Error>(report)
        };
        match collected.await {
            Ok(report) if !report.removed.is_empty() => {
                let numbers: Vec<String> = report.removed.iter().map(|r| format!("#{}", r.number)).collect();
                tracing::info!("retention: removed {name} {} (keep_runs)", numbers.join(", "));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("retention of {name}: {e}"),
        }
    }

    /// How many runs `project` keeps: its pipeline file's `keep_runs`, read where its runs read it.
    async fn keep_runs(&self, project: &Name) -> Result<usize, Error> {
        match self.store().project(project).await {
            Ok(record) => return Ok(crate::projects::pipeline_of(&record).await?.keep_runs),
            Err(store::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // A folder run without `project add`: the file its newest run read.
        let newest = self.store().runs(Some(project), 1).await?;
        let Some(run) = newest.first() else { return Ok(pipeline::DEFAULT_KEEP_RUNS) };
        Ok(pipeline::load(&locate(Path::new(&run.project_path))?.1)?.keep_runs)
    }

    async fn collect_project(&self, project: &Name, keep: usize, report: &mut GcReport) -> Result<(), Error> {
        let store = self.store();
        let past = store.runs_past(project, keep as i64).await?;
        if past.is_empty() {
            return Ok(());
        }
        let in_use = store.runs_in_use().await?;
        let versions = store.model_versions(None).await?;
        let mut going = BTreeMap::new();
        for run in past {
            if let Some(why) = in_use.get(&run.id) {
                report.kept.push(GcKept { project: run.project, number: run.number, why: why.clone() });
                continue;
            }
            let model_versions = versions
                .iter()
                .filter(|v| v.run_id == run.id)
                .map(|v| format!("{} v{}", v.model_group, v.version))
                .collect();
            let images = store
                .stages(run.id)
                .await?
                .into_iter()
                .filter_map(|s| serde_json::from_value::<ImageOutput>(s.outputs.0).ok())
                .filter(|image| image.reference.is_some())
                .collect::<Vec<_>>();
            let shown = images.iter().filter_map(|i| i.reference.clone()).collect();
            going.insert(
                run.id,
                (GcRun { project: run.project, number: run.number, model_versions, images: shown, bytes: 0 }, images),
            );
        }
        let ids: Vec<i64> = going.keys().copied().collect();
        let removed = if report.dry_run { ids.clone() } else { store.remove_runs(&ids).await? };
        let digests_kept = store.image_digests_except(&removed).await?;
        for id in removed {
            let Some((mut run, images)) = going.remove(&id) else { continue };
            // Counted as they go, or (a dry run) as they would.
            run.bytes = self.run_bytes(project, run.number, !report.dry_run).await?;
            if !report.dry_run {
                for image in &images {
                    self.remove_image(project, run.number, image, &digests_kept).await;
                }
            }
            report.bytes += run.bytes;
            report.removed.push(run);
        }
        Ok(())
    }

    /// The bytes of a run's logs, work folder and artifacts; with `remove`, deletes them.
    async fn run_bytes(&self, project: &Name, number: i64, remove: bool) -> Result<u64, Error> {
        let home = self.home();
        let folders = [home.run_logs(project, number), home.run_dir(project, number)];
        let mut bytes = self.inner.artifacts.under(&format!("{project}-{number}"), remove).await?;
        for folder in folders {
            bytes += tokio::task::spawn_blocking(move || {
                let size = size_of(&folder);
                if remove
                    && let Err(e) = std::fs::remove_dir_all(&folder)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(crate::error::io_error(&folder)(e));
                }
                Ok(size)
            })
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        }
        Ok(bytes)
    }

    /// Removes an image a removed run pushed: its local tag, and its manifest from the local
    /// registry unless a kept run names the same digest. Best effort: an image left behind only
    /// takes space.
    async fn remove_image(
        &self,
        project: &Name,
        number: i64,
        image: &ImageOutput,
        kept: &std::collections::HashSet<String>,
    ) {
        let (Some(reference), Some(registry)) = (&image.reference, &image.registry) else { return };
        let Some(repository) = reference.split('@').next() else { return };
        if let Err(e) = self.inner.backends.images.remove(&format!("{repository}:{number}")).await {
            tracing::warn!("retention of {project} #{number}: {e}");
        }
        let Some(digest) = &image.digest else { return };
        if kept.contains(digest) || !registry.starts_with("127.0.0.1:") {
            return;
        }
        let name = repository.strip_prefix(&format!("{registry}/")).unwrap_or(repository);
        if let Err(e) = self.delete_from_local_registry(name, digest).await {
            tracing::warn!("retention of {project} #{number}: removing {reference} from the local registry: {e}");
        }
    }

    async fn collect_captures(&self, report: &mut GcReport) -> Result<(), Error> {
        let root = self.home().root().join("capture");
        let Ok(entries) = std::fs::read_dir(&root) else { return Ok(()) };
        for entry in entries.flatten() {
            let folder = entry.path();
            let Some(endpoint) = entry.file_name().to_str().and_then(|n| Name::parse(n).ok()) else { continue };
            if self.store().endpoint(&endpoint).await?.is_some() {
                continue;
            }
            report.bytes += size_of(&folder);
            if !report.dry_run {
                std::fs::remove_dir_all(&folder).map_err(crate::error::io_error(&folder))?;
            }
            report.captures.push(endpoint.to_string());
        }
        Ok(())
    }
}

/// The bytes of the regular files under `path`, following no links.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path).map_or(0, |entries| entries.flatten().map(|e| size_of(&e.path())).sum())
}
