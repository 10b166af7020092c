//! The shell stage: a command run with `sh -c` in the source folder, for anything the other kinds do not cover.
//!
//! It runs as the server's user with the server's environment, less the server's own secrets, plus
//! the run's secret parameters as upper-case variables, masked in its log.

use std::process::Stdio;

use super::outputs::ShellOutput;
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(context: &mut RunContext, command: &str, log: &mut Log) -> Result<ShellOutput, StageFailure> {
    line(log, &format!("$ {command}")).await;
    // In a PID namespace of its own: what the command starts in the background dies with it on
    // cancel, timeout or a killed server.
    let mut sh = runtime::process::contained("sh");
    sh.arg("-c")
        .arg(command)
        .current_dir(&context.source_dir)
        .env("SAGEBRUSH_PROJECT", &context.run.project)
        .env("SAGEBRUSH_RUN", context.run.number.to_string())
        .envs(context.secrets.env())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let status = if context.secrets.is_empty() {
        // Straight into the log: nothing to mask.
        let stdout = log.try_clone().await.map_err(|e| StageFailure::failed(e.to_string()))?.into_std().await;
        let stderr = log.try_clone().await.map_err(|e| StageFailure::failed(e.to_string()))?.into_std().await;
        sh.stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr)).status().await
    } else {
        masked_status(context, sh, log).await
    }
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

/// Runs `sh` with its output through the run's secret mask into the log.
async fn masked_status(
    context: &RunContext,
    mut sh: tokio::process::Command,
    log: &mut Log,
) -> std::io::Result<std::process::ExitStatus> {
    let mut child = sh.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other("the command's output was not piped"));
    };
    let (out_log, err_log) = (log.try_clone().await?, log.try_clone().await?);
    let secrets = &context.secrets;
    let (status, out, err) =
        tokio::join!(child.wait(), secrets.copy_masked(stdout, out_log), secrets.copy_masked(stderr, err_log));
    out?;
    err?;
    status
}
