//! Following a run: one line per stage transition on stderr, with a spinner on a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use store::{RunRecord, Store};

const POLL: Duration = Duration::from_millis(50);

/// Prints stage transitions until the run ends; returns the finished run.
///
/// Reads the shared state database, so it follows runs executed by this process
/// and by a server alike. Ctrl-C asks for the run to be cancelled.
pub async fn follow(store: &Store, run_id: i64, quiet: bool) -> anyhow::Result<RunRecord> {
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
    let mut shown: Vec<String> = Vec::new();
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    let mut cancel_sent = false;
    loop {
        let run = store.run_by_id(run_id).await?;
        let stages = store.stages(run_id).await?;
        for stage in &stages {
            let index = stage.position as usize;
            if shown.len() <= index {
                shown.resize(index + 1, "pending".to_owned());
            }
            if shown[index] == stage.status {
                continue;
            }
            shown[index] = stage.status.clone();
            match stage.status.as_str() {
                "running" => {
                    if let Some(bar) = &spinner {
                        bar.set_message(format!("{} #{} {}", run.project, run.number, stage.name));
                    }
                }
                "pending" => {}
                status => {
                    let took = match (stage.started_at, stage.finished_at) {
                        (Some(start), Some(end)) => format!(" ({:.2}s)", (end - start) as f64 / 1000.0),
                        _ => String::new(),
                    };
                    let mark = match status {
                        "succeeded" => "ok",
                        "reused" => "reused",
                        "skipped" => "skipped",
                        "cancelled" => "cancelled",
                        _ => "FAILED",
                    };
                    let reason = stage.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                    say(format!("{} #{} {:<12} {mark}{took}{reason}", run.project, run.number, stage.name));
                }
            }
        }
        if run.status != "running" {
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            return Ok(run);
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut ctrl_c, if !cancel_sent => {
                cancel_sent = true;
                say(format!("cancelling {} #{} ...", run.project, run.number));
                store.request_cancel(run_id).await?;
            }
        }
    }
}
