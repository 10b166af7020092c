//! What this process knows of the runs it executes ahead of the store: a cancel that needs no
//! database write, and how a run ended while recording that still fails (a full disk).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEnd {
    Succeeded,
    Failed(String),
    Cancelled,
}

impl RunEnd {
    /// The run status it is recorded as.
    pub fn status(&self) -> store::RunStatus {
        match self {
            RunEnd::Succeeded => store::RunStatus::Succeeded,
            RunEnd::Failed(_) => store::RunStatus::Failed,
            RunEnd::Cancelled => store::RunStatus::Cancelled,
        }
    }

    /// Why, for a run that did not succeed.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RunEnd::Succeeded => None,
            RunEnd::Failed(reason) => Some(reason),
            RunEnd::Cancelled => Some("cancelled by request"),
        }
    }
}

struct LiveRun {
    /// Which execution of the run this is: a run that waited for an approval executes again,
    /// and the end of the first must not touch the second.
    execution: u64,
    cancel: watch::Sender<bool>,
    /// Set when the run ended; the run leaves the table once its end is recorded.
    end: Option<RunEnd>,
}

/// One execution of a run in this process, as [`Live::start`] hands it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Execution {
    pub run_id: i64,
    number: u64,
}

/// The runs this process executes, by run id.
#[derive(Default)]
pub(crate) struct Live {
    runs: Mutex<HashMap<i64, LiveRun>>,
    executions: std::sync::atomic::AtomicU64,
}

impl Live {
    /// Starts tracking an execution of a run; the receiver turns true when it is to be cancelled.
    pub fn start(&self, run_id: i64) -> (Execution, watch::Receiver<bool>) {
        let number = self.executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (cancel, receiver) = watch::channel(false);
        self.lock().insert(run_id, LiveRun { execution: number, cancel, end: None });
        (Execution { run_id, number }, receiver)
    }

    /// Asks a run of this process to stop; false if it is not one, or it has ended already (even
    /// if its end is not recorded yet).
    pub fn cancel(&self, run_id: i64) -> bool {
        match self.lock().get(&run_id) {
            Some(run) if run.end.is_none() => {
                run.cancel.send_replace(true);
                true
            }
            _ => false,
        }
    }

    /// Notes how an execution ended, before it is recorded.
    pub fn end(&self, execution: Execution, end: RunEnd) {
        if let Some(run) = self.lock().get_mut(&execution.run_id).filter(|run| run.execution == execution.number) {
            run.end = Some(end);
        }
    }

    /// Whether a run has ended here and its end is not recorded yet.
    pub fn any_unrecorded(&self) -> bool {
        self.lock().values().any(|run| run.end.is_some())
    }

    /// How a run ended, if it did and the store may not say so yet.
    pub fn ended(&self, run_id: i64) -> Option<RunEnd> {
        self.lock().get(&run_id).and_then(|run| run.end.clone())
    }

    /// Stops tracking an execution whose end is recorded (or that left its run waiting); a later
    /// execution of the same run is left alone.
    pub fn forget(&self, execution: Execution) {
        let mut runs = self.lock();
        if runs.get(&execution.run_id).is_some_and(|run| run.execution == execution.number) {
            runs.remove(&execution.run_id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, LiveRun>> {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_an_earlier_execution_leaves_the_next_one_running() {
        let live = Live::default();
        let (waited, _) = live.start(7);
        // Approved before the first execution finished leaving: the run executes again.
        let (resumed, cancel) = live.start(7);
        live.end(waited, RunEnd::Succeeded);
        live.forget(waited);
        assert_eq!(live.ended(7), None);
        assert!(cancel.has_changed().is_ok(), "the resumed execution's cancel channel is open");
        assert!(!*cancel.borrow());
        assert!(live.cancel(7));
        live.end(resumed, RunEnd::Cancelled);
        assert_eq!(live.ended(7), Some(RunEnd::Cancelled));
        live.forget(resumed);
        assert!(!live.cancel(7));
    }
}
