//! `token create|list|revoke` and `audit`: who may call the server, and what was done.

use std::process::ExitCode;

use engine::Home;

use crate::cli::{AuditArgs, TokenCommand};
use crate::commands::{format_time, print_json};
use crate::via::Via;

pub async fn token(home: &Home, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    match command {
        TokenCommand::Create { name, role, json } => {
            let created = via.create_token(&name, role).await?;
            if json {
                print_json(&created)?;
            } else {
                eprintln!("made token {} ({}); it is shown this once, so keep it now:", created.name, role.as_str());
                println!("{}", created.token);
                eprintln!("callers pass it as SAGEBRUSH_TOKEN=<token> or `Authorization: Bearer <token>`");
            }
        }
        TokenCommand::List { json } => {
            let tokens = via.tokens().await?;
            if json {
                print_json(&tokens)?;
                return Ok(ExitCode::SUCCESS);
            }
            if tokens.is_empty() {
                eprintln!("no tokens yet; make one with `sagebrush token create NAME --role viewer|operator|admin`");
            }
            for token in tokens {
                println!("{:<24} {:<9} made {}", token.name, token.role.as_str(), format_time(token.created_at));
            }
        }
        TokenCommand::Revoke { name } => {
            via.revoke_token(&name).await?;
            eprintln!("revoked token {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(home: &Home, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let page = Via::open(home).await?.audit(args.limit).await?;
    if args.json {
        print_json(&page.entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    for entry in page.entries {
        println!(
            "{}  {:<16} {:<48} {}",
            format_time(entry.at),
            names::printable(&entry.actor),
            names::printable(&entry.action),
            entry.status
        );
    }
    Ok(ExitCode::SUCCESS)
}
