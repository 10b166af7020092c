//! `logs`: a run's stage logs, in stage order, optionally followed until the run ends (through
//! a server, by its stream of the run's log).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use engine::Home;

use crate::cli::LogsArgs;
use crate::via::Via;

/// Prints chunks of stage logs, with a `==> stage <==` line before each stage's first when
/// several stages are shown.
struct Printer {
    headers: bool,
    last: Option<String>,
    out: std::io::StdoutLock<'static>,
}

impl Printer {
    fn print(&mut self, stage: &str, text: &str) -> std::io::Result<()> {
        if self.headers && self.last.as_deref() != Some(stage) {
            writeln!(self.out, "==> {stage} <==")?;
            self.last = Some(stage.to_owned());
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

pub async fn logs(home: &Home, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    let number = via.run(&args.project, args.number).await?.run.number;
    let mut printer = Printer { headers: args.stage.is_none(), last: None, out: std::io::stdout().lock() };
    if let (Via::Server(client), true) = (&via, args.follow) {
        let stage = args.stage.as_ref().map(|s| format!("?stage={s}")).unwrap_or_default();
        let path = format!("/api/v1/runs/{}/{number}/logs{stage}", args.project);
        let mut stream = client.event_stream_at(&path).await?;
        while let Some((event, data)) = stream.next().await? {
            if event == "log" {
                let chunk: serde_json::Value = serde_json::from_str(&data)?;
                printer
                    .print(chunk["stage"].as_str().unwrap_or_default(), chunk["text"].as_str().unwrap_or_default())?;
            } else if event == "end" {
                return Ok(ExitCode::SUCCESS);
            }
        }
        anyhow::bail!(
            "the server ended the log stream before the run ended; `sagebrush show {}` says where it is",
            args.project
        );
    }
    let Via::Local(service) = &via else {
        for (name, log) in via.logs(&args.project, number, args.stage.as_ref()).await? {
            printer.print(&name, &log)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    // In this process: what each stage's log gained since the last read, until the run ends.
    let mut offsets = Vec::new();
    loop {
        let (chunks, status) = service.log_since(&args.project, number, args.stage.as_ref(), &mut offsets).await?;
        for (name, text) in chunks {
            printer.print(&name, &text)?;
        }
        if !args.follow || status.is_finished() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
