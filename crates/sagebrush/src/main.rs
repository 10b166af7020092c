//! The sagebrush binary: CLI and wiring.

mod cli;
mod client;
mod commands;
mod exit;
mod progress;
mod via;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // The sandbox is the first process of a job's namespaces: plain, single-threaded, no async runtime.
    if let cli::Command::Sandbox(args) = cli.command {
        return commands::sandbox(args);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            // The AWS SDK warns of each place of the chain it found nothing in (IMDS off a cloud
            // machine): what matters reaches the user as the error of the call that needed it.
            tracing_subscriber::EnvFilter::try_from_env("SAGEBRUSH_LOG")
                .unwrap_or_else(|_| "warn,aws_config=error,aws_smithy_runtime=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return exit::report(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}
