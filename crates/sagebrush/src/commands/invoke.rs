//! `invoke`: one request to an endpoint through the running server, the answer on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use engine::Home;

use crate::cli::InvokeArgs;

pub async fn invoke(home: &Home, args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let Some(client) = crate::client::connect(home).await? else {
        anyhow::bail!(
            "no sagebrush server is running for {}; start one with `sagebrush server`",
            home.root().display()
        );
    };
    let body = if args.data.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        body
    } else {
        std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?
    };
    let response = client
        .raw(reqwest::Method::POST, &format!("/endpoints/{}/invocations", args.endpoint))
        .header("content-type", &args.content_type)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!("endpoint {} answered {status}: {}", args.endpoint, String::from_utf8_lossy(&bytes).trim());
    }
    std::io::stdout().write_all(&bytes)?;
    Ok(ExitCode::SUCCESS)
}
