//! Following a run: one line per stage transition on stderr, with a spinner on a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use names::Name;
use store::{RunRecord, StageRecord, StageStatus};

use crate::client::Client;

/// How long a follower in this process waits for the store's word before it reads the run again
/// anyway (an end kept in memory on a full disk is not announced).
const LOCAL_PATIENCE: Duration = Duration::from_millis(200);

/// What wakes a follower: the store's notice in this process, or the server's event stream.
enum Wakeup {
    Local(std::sync::Arc<tokio::sync::Notify>),
    Remote { events: reqwest::Response, server: String },
}

impl Wakeup {
    /// Returns when something may have changed; an error when the server's stream ended.
    async fn next(&mut self) -> anyhow::Result<()> {
        match self {
            Wakeup::Local(appended) => {
                let _ = tokio::time::timeout(LOCAL_PATIENCE, appended.notified()).await;
                Ok(())
            }
            // Any chunk: an event of the project, or the stream's keep-alive.
            Wakeup::Remote { events, server } => match events.chunk().await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(crate::client::gone_quietly(server, "its event stream ended")),
                Err(e) => Err(crate::client::gone(server, &e)),
            },
        }
    }
}

/// Where a run's state is read from while it is followed.
pub enum Source<'a> {
    /// A run this process executes: the engine knows how it ended even when the disk is too full to record it.
    Local { engine: &'a engine::Engine, run_id: i64 },
    /// A run the server executes, read through its API; a server that stops answering ends the follow.
    Remote { client: Client, project: Name, number: i64 },
}

impl Source<'_> {
    /// Subscribes to what changes the run, before it is first read, so no change is missed.
    async fn wakeup(&self) -> anyhow::Result<Wakeup> {
        Ok(match self {
            Source::Local { engine, .. } => Wakeup::Local(engine.store().appended_notify()),
            Source::Remote { client, project, .. } => {
                Wakeup::Remote { events: client.event_stream(project).await?, server: client.base().to_owned() }
            }
        })
    }

    async fn view(&self) -> anyhow::Result<(RunRecord, Vec<StageRecord>)> {
        match self {
            Source::Local { engine, run_id } => Ok(engine.run_view(*run_id).await?),
            Source::Remote { client, project, number } => {
                let detail: server::service::RunDetail = client.get(&format!("/runs/{project}/{number}")).await?;
                Ok((detail.run, detail.stages))
            }
        }
    }

    async fn cancel(&self) -> anyhow::Result<()> {
        match self {
            Source::Local { engine, run_id } => {
                engine.cancel(*run_id).await?;
            }
            Source::Remote { client, project, number } => {
                let _: serde_json::Value =
                    client.post(&format!("/runs/{project}/{number}/cancel"), &serde_json::json!({})).await?;
            }
        }
        Ok(())
    }
}

/// Prints stage transitions until the run ends; returns the finished run and its stages.
///
/// The first Ctrl-C asks for the run to be cancelled; a second one stops following at once.
pub async fn follow(source: &Source<'_>, quiet: bool) -> anyhow::Result<(RunRecord, Vec<StageRecord>)> {
    let spinner = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let say = |text: String| match &spinner {
        Some(bar) => bar.println(text),
        None if !quiet => eprintln!("{text}"),
        None => {}
    };
    let mut shown: Vec<StageStatus> = Vec::new();
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    let mut cancel_sent = false;
    let mut queued_said = false;
    let mut wakeup = source.wakeup().await?;
    loop {
        let (run, stages) = source.view().await?;
        if run.status == store::RunStatus::Queued && !queued_said {
            queued_said = true;
            match &spinner {
                Some(bar) => bar.set_message(format!("{} #{} queued", run.project, run.number)),
                None => say(format!("{} #{} queued", run.project, run.number)),
            }
        }
        for stage in &stages {
            let index = usize::try_from(stage.position).unwrap_or(0);
            if shown.len() <= index {
                shown.resize(index + 1, StageStatus::Pending);
            }
            if shown[index] == stage.status {
                continue;
            }
            shown[index] = stage.status;
            match stage.status {
                StageStatus::Running | StageStatus::Waiting => {
                    if let Some(bar) = &spinner {
                        bar.set_message(format!("{} #{} {}", run.project, run.number, stage.name));
                    }
                }
                StageStatus::Pending => {}
                status => {
                    let took = match (stage.started_at, stage.finished_at) {
                        (Some(start), Some(end)) => format!(" ({:.2}s)", (end - start) as f64 / 1000.0),
                        _ => String::new(),
                    };
                    let mark = match status {
                        StageStatus::Succeeded => "ok",
                        StageStatus::Failed => "FAILED",
                        other => other.as_str(),
                    };
                    let reason = stage.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                    say(format!("{} #{} {:<12} {mark}{took}{reason}", run.project, run.number, stage.name));
                }
            }
        }
        // A waiting run goes on only when someone decides, perhaps days later.
        if run.status.is_finished() || run.status == store::RunStatus::Waiting {
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            return Ok((run, stages));
        }
        tokio::select! {
            woken = wakeup.next() => woken?,
            _ = &mut ctrl_c => {
                if cancel_sent {
                    anyhow::bail!(
                        "stopped following {} #{}; it may still be stopping: `sagebrush show {} {}`",
                        run.project, run.number, run.project, run.number
                    );
                }
                cancel_sent = true;
                say(format!("cancelling {} #{} ... (Ctrl-C again to stop waiting)", run.project, run.number));
                source.cancel().await?;
                ctrl_c = Box::pin(tokio::signal::ctrl_c());
            }
        }
    }
}
