//! The run queue of a server: runs are recorded `queued`, and a scheduler starts them, at most
//! `limit` running at once and each project's runs one at a time in the order they were queued.
//!
//! The queue is the `runs` table itself, so it survives a restart: a server that starts again
//! goes on with the runs still queued.

use std::collections::HashSet;
use std::time::Duration;

use store::RunRecord;

use crate::Engine;

/// How often the scheduler looks at the queue when nothing woke it (a run queued by another process).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How often a server looks for running runs whose owner is gone.
const RECOVER_EVERY: Duration = Duration::from_secs(3);

/// The default limit: half the cores, at least one.
pub fn default_limit() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1)
}

impl Engine {
    /// Makes this engine queue the runs it is given and start them itself, at most `limit` at once.
    /// Call once, in the process that serves (the server, `up`).
    pub fn run_queue(&self, limit: usize) {
        if self.inner.queue_limit.set(limit.max(1)).is_err() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let mut recovered = tokio::time::Instant::now();
            loop {
                // Another server on the same database may have died holding runs: fail them, so
                // that their projects' queued runs can go on here.
                if recovered.elapsed() >= RECOVER_EVERY {
                    recovered = tokio::time::Instant::now();
                    if let Err(e) = engine.recover_runs().await {
                        tracing::warn!("looking for runs whose server is gone: {e}");
                    }
                }
                if let Err(e) = engine.expire_approvals().await {
                    tracing::warn!("rejecting approvals past their time: {e}");
                }
                if let Err(e) = engine.start_queued().await {
                    tracing::warn!("starting queued runs: {e}");
                }
                tokio::select! {
                    () = engine.inner.wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        });
    }

    /// Starts the queued runs that may start now.
    async fn start_queued(&self) -> Result<(), crate::Error> {
        let Some(&limit) = self.inner.queue_limit.get() else { return Ok(()) };
        let queued = self.store().queue_heads().await?;
        if queued.is_empty() {
            return Ok(());
        }
        let running = self.store().unfinished_runs().await?;
        for run in pick(&queued, &running, &self.inner.owner, limit) {
            if self.inner.live.ended(run.id).is_some() {
                continue; // it could not start, and that is being recorded
            }
            let mut claimed = self.store().claim_run(run.id, &self.inner.owner).await;
            if claimed.as_ref().is_err_and(store::Error::is_disk_full) && self.store().release_reserve() {
                claimed = self.store().claim_run(run.id, &self.inner.owner).await;
            }
            match claimed {
                // Another server on the same state may have taken it first.
                Ok(false) => {}
                Ok(true) => {
                    let claimed = self.store().run_by_id(run.id).await?;
                    self.launch(claimed).await;
                }
                // A run that cannot even be started must not wait in the queue for ever: it fails, with why.
                Err(e) => self.fail_unstarted(run, format!("the run could not start: {e}")),
            }
        }
        Ok(())
    }
}

/// Which of the `queued` runs (oldest first) may start here while `running` are (on any server
/// sharing the database): no more than `limit` running of `owner`'s, no project with two, and no
/// run ahead of an earlier run of its project.
pub(crate) fn pick<'a>(
    queued: &'a [RunRecord],
    running: &[RunRecord],
    owner: &str,
    limit: usize,
) -> Vec<&'a RunRecord> {
    let mut busy: HashSet<&str> = running.iter().map(|r| r.project.as_str()).collect();
    let mine = running.iter().filter(|r| r.owner.as_deref() == Some(owner)).count();
    let mut slots = limit.saturating_sub(mine);
    let mut picked = Vec::new();
    for run in queued {
        if slots == 0 {
            break;
        }
        // Either way the project is now taken: by this run, or by the one running ahead of it.
        if busy.insert(run.project.as_str()) {
            picked.push(run);
            slots -= 1;
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, project: &str) -> RunRecord {
        RunRecord {
            id,
            project: project.to_owned(),
            number: id,
            project_path: String::new(),
            status: store::RunStatus::Queued,
            reason: None,
            secrets: Default::default(),
            parameters: Default::default(),
            trigger: store::TriggerKind::Manual,
            trigger_detail: None,
            triggered_by: None,
            commit_sha: None,
            owner: Some(ME.to_owned()),
            cancel_requested: false,
            retry_of: None,
            retry_from: None,
            requested_commit: None,
            created_at: 0,
            started_at: None,
            finished_at: None,
            lease_until: None,
        }
    }

    const ME: &str = "1:1@here";

    fn ids(picked: &[&RunRecord]) -> Vec<i64> {
        picked.iter().map(|r| r.id).collect()
    }

    #[test]
    fn the_oldest_run_of_each_free_project_starts_up_to_the_limit() {
        let queued = [run(1, "a"), run(2, "a"), run(3, "b"), run(4, "c"), run(5, "b")];
        assert_eq!(ids(&pick(&queued, &[], ME, 2)), [1, 3]);
        assert_eq!(ids(&pick(&queued, &[], ME, 10)), [1, 3, 4]);
        // A project with a run going waits; the others go on.
        assert_eq!(ids(&pick(&queued, &[run(9, "a")], ME, 2)), [3]);
        assert_eq!(ids(&pick(&queued, &[run(9, "a"), run(8, "x")], ME, 2)), Vec::<i64>::new());
        assert_eq!(ids(&pick(&[], &[], ME, 2)), Vec::<i64>::new());
        // Another server's run takes no slot here, but its project still waits for it.
        let mut elsewhere = run(7, "a");
        elsewhere.owner = Some("2:2@there".to_owned());
        assert_eq!(ids(&pick(&queued, &[elsewhere], ME, 1)), [3]);
    }

    #[test]
    fn ten_runs_of_two_projects_start_in_order_never_more_than_the_limit() {
        // Simulated: each round starts what `pick` allows and finishes the oldest running run.
        let mut queued: Vec<RunRecord> = (1..=10).map(|id| run(id, if id % 3 == 0 { "b" } else { "a" })).collect();
        let mut running: Vec<RunRecord> = Vec::new();
        let mut started: Vec<RunRecord> = Vec::new();
        while !queued.is_empty() || !running.is_empty() {
            let chosen: Vec<i64> = ids(&pick(&queued, &running, ME, 2));
            for id in chosen {
                let position = queued.iter().position(|r| r.id == id).unwrap();
                let run = queued.remove(position);
                started.push(run.clone());
                running.push(run);
            }
            assert!(running.len() <= 2, "{} running", running.len());
            running.remove(0);
        }
        for project in ["a", "b"] {
            let order: Vec<i64> = started.iter().filter(|r| r.project == project).map(|r| r.id).collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{project} started out of order: {order:?}");
        }
        assert_eq!(started.len(), 10);
    }
}
