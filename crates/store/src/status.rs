//! The statuses of runs, stages and training jobs: stored as text, read back as enums.

use serde::{Deserialize, Serialize};

/// Where a run is: `Queued -> Running -> (Waiting) -> Succeeded | Failed | Cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    /// Whether the run is over (nothing will change it again).
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Where a stage of a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Pending,
    Running,
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
    /// A retry took this stage's outputs from the run it retries.
    Reused,
}

impl StageStatus {
    /// Whether a later stage may use its outputs.
    pub fn has_outputs(self) -> bool {
        matches!(self, StageStatus::Succeeded | StageStatus::Reused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Pending => "pending",
            StageStatus::Running => "running",
            StageStatus::Waiting => "waiting",
            StageStatus::Succeeded => "succeeded",
            StageStatus::Failed => "failed",
            StageStatus::Cancelled => "cancelled",
            StageStatus::Skipped => "skipped",
            StageStatus::Reused => "reused",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::fmt::Display for StageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A training job's status, SageMaker's `TrainingJobStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TrainingJobStatus {
    InProgress,
    Completed,
    Failed,
    Stopping,
    Stopped,
}

impl TrainingJobStatus {
    /// Whether the job is over.
    pub fn is_finished(self) -> bool {
        matches!(self, TrainingJobStatus::Completed | TrainingJobStatus::Failed | TrainingJobStatus::Stopped)
    }
}

/// What a training job is doing, SageMaker's `SecondaryStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SecondaryStatus {
    Starting,
    Downloading,
    Training,
    Uploading,
    Completed,
    Failed,
    Stopping,
    Stopped,
    MaxRuntimeExceeded,
    // The rest only SageMaker itself reports.
    Pending,
    LaunchingMLInstances,
    PreparingTrainingStack,
    DownloadingTrainingImage,
    Interrupted,
    MaxWaitTimeExceeded,
    Updating,
    Restarting,
}

impl std::fmt::Display for TrainingJobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!("{self:?}"))
    }
}

impl std::fmt::Display for SecondaryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!("{self:?}"))
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// A person, through the CLI or the API.
    Manual,
    /// A retry of an earlier run.
    Retry,
    /// A push webhook from a git host.
    Push,
    /// A new commit found by polling a git project's branch.
    Poll,
    /// A cron schedule.
    Cron,
    /// New or changed files under a watched folder.
    Data,
    /// An endpoint's requests drifting from its model's training data.
    Drift,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "manual",
            TriggerKind::Retry => "retry",
            TriggerKind::Push => "push",
            TriggerKind::Poll => "poll",
            TriggerKind::Cron => "cron",
            TriggerKind::Data => "data",
            TriggerKind::Drift => "drift",
        }
    }
}

impl std::fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether a model version may be promoted, SageMaker's `ModelApprovalStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ModelApprovalStatus {
    PendingManualApproval,
    Approved,
    Rejected,
}

impl std::fmt::Display for ModelApprovalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!("{self:?}"))
    }
}

crate::db::text_enum!(RunStatus, StageStatus, TrainingJobStatus, SecondaryStatus, TriggerKind, ModelApprovalStatus);
