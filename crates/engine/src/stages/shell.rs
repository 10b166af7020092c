//! The shell stage: a command run with `sh -c` in the source folder, for anything the other kinds do not cover.
//!
//! It runs as the server's user with the server's environment, less the server's own secrets.

use std::process::Stdio;

use super::outputs::ShellOutput;
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(context: &mut RunContext, command: &str, log: &mut Log) -> Result<ShellOutput, StageFailure> {
    line(log, &format!("$ {command}")).await;
    let stdout = log.try_clone().await.map_err(|e| StageFailure::failed(e.to_string()))?.into_std().await;
    let stderr = log.try_clone().await.map_err(|e| StageFailure::failed(e.to_string()))?.into_std().await;
    // In a PID namespace of its own: what the command starts in the background dies with it on
    // cancel, timeout or a killed server.
    let status = runtime::process::contained("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&context.source_dir)
        .env("SAGEBRUSH_PROJECT", &context.run.project)
        .env("SAGEBRUSH_RUN", context.run.number.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| StageFailure::failed(format!("could not start sh: {e}")))?;
    match status.code() {
        Some(0) => Ok(ShellOutput { exit_code: 0 }),
        Some(code) => Err(StageFailure::Failed {
            reason: format!("the command exited with status {code}"),
            output: serde_json::json!({ "exit_code": code }),
        }),
        None => Err(StageFailure::failed("the command was killed by a signal")),
    }
}
