//! `logs`: a run's stage logs, in stage order, optionally followed until the run ends.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use engine::Home;
use names::Name;

use crate::cli::LogsArgs;
use crate::commands::open_store;
use crate::exit::Invalid;

pub async fn logs(home: &Home, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(home).await?;
    let run = store.run(&args.project, args.number).await?;
    let stages = store.stages(run.id).await?;
    if let Some(wanted) = &args.stage
        && !stages.iter().any(|s| *wanted == s.name)
    {
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(Invalid(format!(
            "run {} #{} has no stage `{wanted}`; its stages are {}",
            run.project,
            run.number,
            names.join(", ")
        )));
    }
    // A stage name recorded before names were checked never becomes a path.
    let selected: Vec<Name> = stages
        .iter()
        .filter(|s| args.stage.as_ref().is_none_or(|w| *w == s.name))
        .filter_map(|s| Name::parse(&s.name).ok())
        .collect();
    // Bytes already printed per stage, so following prints only what is new.
    let mut printed = vec![0usize; selected.len()];
    let mut header_done = vec![false; selected.len()];
    let mut stdout = std::io::stdout().lock();
    loop {
        let finished = store.run_by_id(run.id).await?.status.is_finished();
        for (index, name) in selected.iter().enumerate() {
            let path = home.stage_log(&args.project, run.number, name);
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if bytes.len() > printed[index] {
                if selected.len() > 1 && !header_done[index] {
                    writeln!(stdout, "==> {name} <==")?;
                    header_done[index] = true;
                }
                stdout.write_all(&bytes[printed[index]..])?;
                stdout.flush()?;
                printed[index] = bytes.len();
            }
        }
        if !args.follow || finished {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
