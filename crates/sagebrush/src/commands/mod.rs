//! One module per group of commands; `dispatch` picks one.

mod algorithm;
mod deploy;
mod doctor;
mod drift;
mod invoke;
mod list;
mod logs;
mod project;
mod run;
mod token;

use std::process::ExitCode;

use engine::Home;

pub use algorithm::sandbox;

use crate::cli::{Cli, Command};

/// Runs the command the user asked for.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut home = Home::new(cli.home);
    if let Some(location) = &cli.artifacts {
        home = home.with_artifacts(store::Location::parse(location)?);
    }
    if let Some(database) = &cli.database {
        home = home.with_database(store::Database::parse(database));
    }
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
        Command::History(args) => list::history(&home, args).await,
        Command::Drift(args) => drift::drift(&home, args).await,
        Command::Gc(args) => list::gc(&home, args).await,
        Command::Doctor(args) => doctor::doctor(&home, args).await,
        Command::Registry(args) => doctor::registry(&home, args).await,
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
        // `main` runs it before any async runtime exists.
        Command::Sandbox(args) => Ok(sandbox(args)),
    }
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2026-11-25 10:04:05`-style UTC time from epoch milliseconds.
fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A time as a person writes it: RFC 3339 (`2026-12-01T17:00:00Z`), `2026-12-01 17:00:00` (UTC),
/// or milliseconds since the epoch; in epoch milliseconds.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc().timestamp_millis()).map_err(
        |_| format!("`{text}` is not a time; write 2026-12-01T17:00:00Z, \"2026-12-01 17:00:00\" (UTC) or epoch ms"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_795_000_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn parses_the_times_people_write() {
        assert_eq!(super::parse_time("2026-11-18T11:06:40Z"), Ok(1_795_000_000_000));
        assert_eq!(super::parse_time("2026-11-18T12:06:40+01:00"), Ok(1_795_000_000_000));
        assert_eq!(super::parse_time("2026-11-18 11:06:40"), Ok(1_795_000_000_000));
        assert_eq!(super::parse_time("1795000000000"), Ok(1_795_000_000_000));
        assert!(super::parse_time("yesterday").is_err());
    }
}
