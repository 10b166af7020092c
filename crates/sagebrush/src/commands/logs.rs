//! `logs`: a run's stage logs, in stage order, optionally followed until the run ends.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use engine::Home;

use crate::cli::LogsArgs;
use crate::via::Via;

pub async fn logs(home: &Home, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    let number = via.run(&args.project, args.number).await?.run.number;
    // Bytes already printed per stage, so following prints only what is new.
    let mut printed: Vec<usize> = Vec::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        let (stages, finished) = via.logs(&args.project, number, args.stage.as_ref()).await?;
        printed.resize(stages.len(), 0);
        for (index, (name, log)) in stages.iter().enumerate() {
            if log.len() > printed[index] {
                if stages.len() > 1 && printed[index] == 0 {
                    writeln!(stdout, "==> {name} <==")?;
                }
                stdout.write_all(&log.as_bytes()[printed[index]..])?;
                stdout.flush()?;
                printed[index] = log.len();
            }
        }
        if !args.follow || finished {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
