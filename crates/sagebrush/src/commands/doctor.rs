//! `sagebrush doctor`: one line per check, and what to do about each that is not ok; and
//! `sagebrush registry`, where images are pushed.

use std::process::ExitCode;

use engine::Home;
use engine::doctor::CheckStatus;

use super::print_json;
use crate::cli::JsonArgs;
use crate::via::Via;

pub async fn doctor(home: &Home, args: JsonArgs) -> anyhow::Result<ExitCode> {
    let checks = engine::doctor::check(home, &server::backends()).await;
    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    if args.json {
        print_json(&checks)?;
    } else {
        for check in &checks {
            let mark = match check.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
            };
            println!("{mark} {:<10} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("     {:<10} fix: {fix}", "");
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub async fn registry(home: &Home, args: JsonArgs) -> anyhow::Result<ExitCode> {
    let registry = Via::open(home).await?.registry().await?;
    if args.json {
        print_json(&registry)?;
    } else {
        println!("{}", registry.address);
    }
    Ok(ExitCode::SUCCESS)
}
