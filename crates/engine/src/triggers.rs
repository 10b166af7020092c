//! The triggers a server fires on its own: a git project's branch polled at an interval, a cron
//! schedule, a watched data folder, and an endpoint's requests drifting from the training data.
//!
//! Each project's `[triggers]` is read from its pipeline file at every tick (a git project's from
//! its branch's newest fetched commit), so a changed file needs no restart. What each trigger last
//! saw (a commit, the time it last fired, a digest of the files) is kept in the store and written
//! before the run is queued, so a restart neither repeats a run nor forgets one a schedule owes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use names::Name;
use pipeline::{CronTrigger, DataTrigger, DriftTrigger, PollTrigger, Triggers};
use sha2::{Digest, Sha256};
use store::{ProjectRecord, Trigger, TriggerKind};

use crate::projects::{git, pipeline_of};
use crate::{Engine, Error};

/// How often the triggers are looked at.
const TICK: Duration = Duration::from_secs(1);

/// What the loop keeps between ticks; lost on a restart, which only makes the next tick look sooner.
#[derive(Default)]
struct Memory {
    /// When each project's branch was last fetched.
    polled: HashMap<String, Instant>,
    /// When each project's data folder was last read.
    scanned: HashMap<String, Instant>,
    /// A data folder's new digest, and since when it has been that, until it has held for the debounce.
    settling: HashMap<String, (String, Instant)>,
    /// When each project's drift was last checked.
    drift_checked: HashMap<String, Instant>,
}

impl Engine {
    /// Fires the projects' poll, cron and data triggers from now on. Call once, in the process that
    /// serves, after [`Engine::run_queue`].
    pub fn run_triggers(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut memory = Memory::default();
            loop {
                engine.fire_triggers(&mut memory, Utc::now()).await;
                tokio::time::sleep(TICK).await;
            }
        });
    }

    async fn fire_triggers(&self, memory: &mut Memory, now: DateTime<Utc>) {
        let projects = match self.store().projects().await {
            Ok(projects) => projects,
            Err(e) => return tracing::warn!("listing projects for their triggers: {e}"),
        };
        for project in projects {
            let Ok(name) = Name::parse(&project.name) else { continue };
            // A file that does not parse fires nothing; its runs say why when someone starts one.
            let Ok(triggers) = triggers_of(&project).await else { continue };
            let Triggers { poll, cron, data, drift, .. } = triggers;
            let fired = async {
                if let Some(cron) = &cron {
                    self.cron_tick(&name, cron, now).await?;
                }
                if let Some(poll) = &poll {
                    self.poll_tick(&name, &project, poll, memory).await?;
                }
                if let Some(data) = &data {
                    self.data_tick(&name, &project, data, memory).await?;
                }
                if let Some(drift) = &drift {
                    self.drift_tick(&name, drift, memory).await?;
                }
                Ok::<_, Error>(())
            };
            if let Err(e) = fired.await {
                tracing::warn!("triggers of {name}: {e}");
            }
        }
    }

    async fn cron_tick(&self, name: &Name, cron: &CronTrigger, now: DateTime<Utc>) -> Result<(), Error> {
        let store = self.store();
        let last = store.trigger_state(name, "cron").await?.and_then(|ms| ms.parse::<i64>().ok());
        let Some(last) = last.and_then(DateTime::from_timestamp_millis) else {
            // Counted from when the schedule was first seen, not from the epoch.
            store.set_trigger_state(name, "cron", &now.timestamp_millis().to_string()).await?;
            tracing::info!("{name}: [triggers.cron] follows {} ({}) from now", cron.schedule, cron.timezone);
            return Ok(());
        };
        if !cron.due(last, now) {
            return Ok(());
        }
        store.set_trigger_state(name, "cron", &now.timestamp_millis().to_string()).await?;
        let detail = format!("schedule {} ({})", cron.schedule, cron.timezone);
        self.submit_triggered(name, None, Trigger { kind: TriggerKind::Cron, detail: Some(detail), by: None }).await
    }

    async fn poll_tick(
        &self,
        name: &Name,
        project: &ProjectRecord,
        poll: &PollTrigger,
        memory: &mut Memory,
    ) -> Result<(), Error> {
        if memory.polled.get(name.as_str()).is_some_and(|at| at.elapsed() < poll.interval) {
            return Ok(());
        }
        memory.polled.insert(name.to_string(), Instant::now());
        let Some(branch) = &project.branch else {
            return Err(Error::Invalid("[triggers.poll] polls a git project; this one is a folder".to_owned()));
        };
        let mirror = Path::new(&project.path);
        git(&["fetch", "--quiet", "--prune", "origin"], Some(mirror)).await?;
        let head = git(&["rev-parse", "--verify", &format!("refs/heads/{branch}^{{commit}}")], Some(mirror)).await?;
        let store = self.store();
        let seen = store.trigger_state(name, "poll").await?;
        if seen.as_deref() == Some(head.as_str()) {
            return Ok(());
        }
        store.set_trigger_state(name, "poll", &head).await?;
        // The first look only notes where the branch is.
        if seen.is_none() {
            tracing::info!("{name}: [triggers.poll] watches {branch} from {head}");
            return Ok(());
        }
        let detail = format!("new commit {} on {branch}", &head[..head.len().min(12)]);
        let trigger = Trigger { kind: TriggerKind::Poll, detail: Some(detail), by: None };
        self.submit_triggered(name, Some(&head), trigger).await
    }

    async fn data_tick(
        &self,
        name: &Name,
        project: &ProjectRecord,
        data: &DataTrigger,
        memory: &mut Memory,
    ) -> Result<(), Error> {
        let every = (data.debounce / 2).max(TICK);
        if memory.scanned.get(name.as_str()).is_some_and(|at| at.elapsed() < every) {
            return Ok(());
        }
        memory.scanned.insert(name.to_string(), Instant::now());
        let digest = if data.path.starts_with("s3://") {
            store::s3_digest(&data.path).await?
        } else {
            let folder = data_folder(project, data)?;
            tokio::task::spawn_blocking(move || digest_files(&folder))
                .await
                .map_err(|e| Error::Invalid(e.to_string()))??
        };
        let store = self.store();
        let Some(seen) = store.trigger_state(name, "data").await? else {
            store.set_trigger_state(name, "data", &digest).await?;
            tracing::info!("{name}: [triggers.data] watches {}", data.path);
            return Ok(());
        };
        if seen == digest {
            memory.settling.remove(name.as_str());
            return Ok(());
        }
        // Changed: wait until the files have stayed as they are for the debounce (a copy in progress).
        match memory.settling.get(name.as_str()) {
            Some((settling, since)) if *settling == digest && since.elapsed() >= data.debounce => {}
            Some((settling, _)) if *settling == digest => return Ok(()),
            _ => {
                memory.settling.insert(name.to_string(), (digest, Instant::now()));
                return Ok(());
            }
        }
        memory.settling.remove(name.as_str());
        store.set_trigger_state(name, "data", &digest).await?;
        let detail = format!("files changed under {}", data.path);
        self.submit_triggered(name, None, Trigger { kind: TriggerKind::Data, detail: Some(detail), by: None }).await
    }

    async fn drift_tick(&self, name: &Name, drift: &DriftTrigger, memory: &mut Memory) -> Result<(), Error> {
        if memory.drift_checked.get(name.as_str()).is_some_and(|at| at.elapsed() < drift.every) {
            return Ok(());
        }
        memory.drift_checked.insert(name.to_string(), Instant::now());
        let store = self.store();
        // Only requests after the last drift run count, so one shift starts one run.
        let since = store.trigger_state(name, "drift").await?.and_then(|ms| ms.parse::<i64>().ok()).unwrap_or(0);
        let report = match self.drift(&drift.endpoint, drift.window, since, drift.threshold).await {
            Ok(report) => report,
            // Not deployed yet: nothing to watch.
            Err(Error::Store(store::Error::NotFound(_))) => return Ok(()),
            Err(e) => return Err(e),
        };
        if report.rows < drift.window {
            let (endpoint, rows, window) = (&drift.endpoint, report.rows, drift.window);
            tracing::debug!("{name}: {endpoint}: {rows} of {window} requests to compare");
            return Ok(());
        }
        let Some(worst) = report.features.iter().max_by(|a, b| a.psi.total_cmp(&b.psi)) else { return Ok(()) };
        if !worst.drifted {
            let endpoint = &drift.endpoint;
            let (psi, rows) = (worst.psi, report.rows);
            tracing::info!("{name}: {endpoint} has not drifted: largest PSI {psi:.4} over {rows} requests");
            return Ok(());
        }
        store.set_trigger_state(name, "drift", &store::now_ms().to_string()).await?;
        let detail = format!(
            "feature {} of {} drifted: PSI {:.3} > {} over {} requests ({} v{})",
            worst.feature,
            drift.endpoint,
            worst.psi,
            drift.threshold,
            report.rows,
            report.model_group,
            report.model_version
        );
        self.submit_triggered(name, None, Trigger { kind: TriggerKind::Drift, detail: Some(detail), by: None }).await
    }

    /// Queues a triggered run: of `commit`, or of the project as it is (a git project's branch head).
    async fn submit_triggered(&self, name: &Name, commit: Option<&str>, trigger: Trigger) -> Result<(), Error> {
        let submitted = match commit {
            Some(commit) => self.submit_commit(name, commit, &trigger).await?,
            None => self.submit_project(name, &[], &trigger).await?,
        };
        let detail = trigger.detail.unwrap_or_default();
        tracing::info!("{name} #{} queued by its {} trigger: {detail}", submitted.run.number, trigger.kind);
        Ok(())
    }
}

/// A project's triggers as its pipeline file declares them now.
async fn triggers_of(project: &ProjectRecord) -> Result<Triggers, Error> {
    Ok(pipeline_of(project).await?.triggers)
}

/// Where a data trigger looks: in a folder project's folder, or an absolute path.
fn data_folder(project: &ProjectRecord, data: &DataTrigger) -> Result<PathBuf, Error> {
    let path = Path::new(&data.path);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    match project.branch {
        None => Ok(Path::new(&project.path).join(path)),
        Some(_) => Err(Error::Invalid(format!(
            "[triggers.data] path `{}` is relative, but a git project has no folder of its own to hold it; \
             give an absolute path (with allow_absolute_paths)",
            data.path
        ))),
    }
}

/// A digest of the names and contents of the files under `path` (or of the file itself), so that
/// touching a file changes nothing and a missing folder is empty.
fn digest_files(path: &Path) -> Result<String, Error> {
    let mut files = Vec::new();
    collect_files(path, &mut files);
    files.sort();
    let mut digest = Sha256::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(crate::error::io_error(file))?;
        digest.update(file.strip_prefix(path).unwrap_or(file).to_string_lossy().as_bytes());
        digest.update([0]);
        digest.update(Sha256::digest(&bytes));
    }
    Ok(format!("{:x}", digest.finalize()))
}

/// Regular files under `path`, following no links.
fn collect_files(path: &Path, files: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return };
    if meta.is_file() {
        files.push(path.to_owned());
    } else if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            collect_files(&entry.path(), files);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_changes_with_contents_and_names_not_with_times() {
        let dir = tempfile::tempdir().unwrap();
        let empty = digest_files(dir.path()).unwrap();
        assert_eq!(digest_files(&dir.path().join("missing")).unwrap(), empty);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.csv"), "1,2\n").unwrap();
        let one = digest_files(dir.path()).unwrap();
        assert_ne!(one, empty);
        // Written again with the same bytes: a new modification time, the same digest.
        std::fs::write(dir.path().join("sub/a.csv"), "1,2\n").unwrap();
        assert_eq!(digest_files(dir.path()).unwrap(), one);
        std::fs::rename(dir.path().join("sub/a.csv"), dir.path().join("sub/b.csv")).unwrap();
        assert_ne!(digest_files(dir.path()).unwrap(), one, "a renamed file is a change");
    }
}
