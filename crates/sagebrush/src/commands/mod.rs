//! One module per group of commands; `dispatch` picks one.

mod algorithm;
mod deploy;
mod invoke;
mod list;
mod logs;
mod project;
mod run;
mod token;

use std::process::ExitCode;

use engine::Home;

use crate::cli::{Cli, Command};

/// Runs the command the user asked for.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = Home::new(cli.home);
    crate::client::configure(cli.server, cli.token);
    match cli.command {
        Command::Up(args) => run::up(&home, args).await,
        Command::Server(args) => run::server(&home, args).await,
        Command::Run(args) => run::run(&home, args).await,
        Command::Retry(args) => run::retry(&home, args).await,
        Command::Cancel(args) => run::cancel(&home, args).await,
        Command::Approve(args) => run::decide(&home, args, true).await,
        Command::Reject(args) => run::decide(&home, args, false).await,
        Command::Runs(args) => list::runs(&home, args).await,
        Command::Show(args) => list::show(&home, args).await,
        Command::Endpoints(args) => list::endpoints(&home, args).await,
        Command::DeleteEndpoint(args) => list::delete_endpoint(&home, args).await,
        Command::Deploy(args) => deploy::deploy(&home, args).await,
        Command::Weights(args) => deploy::weights(&home, args).await,
        Command::Models(args) => list::models(&home, args).await,
        Command::Logs(args) => logs::logs(&home, args).await,
        Command::Invoke(args) => invoke::invoke(&home, args).await,
        Command::Project(command) => project::project(&home, command).await,
        Command::Token(command) => token::token(&home, command).await,
        Command::Audit(args) => token::audit(&home, args).await,
        Command::Events(args) => list::events(&home, args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "sagebrush", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Algorithm(command) => algorithm::algorithm(command).await,
    }
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2026-11-25 10:04:05`-style UTC time from epoch milliseconds.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one format.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_795_000_000_000), "2026-11-18 11:06:40");
    }
}
