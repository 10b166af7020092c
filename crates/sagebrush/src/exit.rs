//! Exit codes scripts can trust, and how errors are printed.

use std::process::ExitCode;

/// The run or operation succeeded.
pub const SUCCESS: u8 = 0;
/// A run failed, or an operation could not be done.
pub const FAILED: u8 = 1;
/// The input was invalid: pipeline file, parameter, usage. Nothing changed.
pub const INVALID: u8 = 2;
/// The run was cancelled.
pub const CANCELLED: u8 = 3;
/// The run waits for someone to approve it (`sagebrush approve`).
pub const WAITING: u8 = 4;

/// Prints `error: ...` with its causes, and picks the exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    let invalid = error.chain().any(|e| {
        matches!(e.downcast_ref::<engine::Error>(), Some(engine::Error::Pipeline(_) | engine::Error::Invalid(_)))
            || e.downcast_ref::<pipeline::Error>().is_some()
            || e.downcast_ref::<Invalid>().is_some()
            || e.downcast_ref::<server::ServiceError>().is_some_and(server::ServiceError::is_invalid_input)
            || matches!(e.downcast_ref::<server::Error>(), Some(server::Error::Refused(_)))
    });
    ExitCode::from(if invalid { INVALID } else { FAILED })
}

/// An error in what the user asked for (exit code 2).
#[derive(Debug)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The exit code for a run's final status.
pub fn for_status(status: store::RunStatus) -> ExitCode {
    ExitCode::from(match status {
        store::RunStatus::Succeeded => SUCCESS,
        store::RunStatus::Cancelled => CANCELLED,
        store::RunStatus::Waiting => WAITING,
        _ => FAILED,
    })
}
