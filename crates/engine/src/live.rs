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
    cancel: watch::Sender<bool>,
    /// Set when the run ended; the run leaves the table once its end is recorded.
    end: Option<RunEnd>,
}

/// The runs this process executes, by run id.
#[derive(Default)]
pub(crate) struct Live {
    runs: Mutex<HashMap<i64, LiveRun>>,
}

impl Live {
    /// Starts tracking a run; the receiver turns true when it is to be cancelled.
    pub fn start(&self, run_id: i64) -> watch::Receiver<bool> {
        let (cancel, receiver) = watch::channel(false);
        self.lock().insert(run_id, LiveRun { cancel, end: None });
        receiver
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

    /// Notes how a run ended, before it is recorded.
    pub fn end(&self, run_id: i64, end: RunEnd) {
        if let Some(run) = self.lock().get_mut(&run_id) {
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

    /// Stops tracking a run whose end is recorded.
    pub fn forget(&self, run_id: i64) {
        self.lock().remove(&run_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, LiveRun>> {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
