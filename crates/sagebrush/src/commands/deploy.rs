//! `deploy`: a registered model version onto an endpoint of the running server, with a traffic policy.

use std::process::ExitCode;

use engine::Home;

use crate::cli::DeployArgs;

pub async fn deploy(home: &Home, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let Some(server) = crate::server::running(home).await else {
        anyhow::bail!(crate::exit::Invalid(
            "no sagebrush server is running for this home; start one with `sagebrush server` (it serves the endpoint)"
                .to_owned()
        ));
    };
    let request = serde_json::json!({
        "model_group": args.model_group,
        "model_version": args.model_version,
        "traffic": args.traffic,
        "traffic_percent": args.traffic_percent,
        "bake_seconds": args.bake,
        "max_error_rate": args.max_error_rate,
        "max_p99_ms": args.max_p99_ms,
        "variant": args.variant,
        "weight": args.weight,
        "instances": args.instances,
        "instance_type": args.instance_type,
    });
    let client = reqwest::Client::builder().no_proxy().build()?;
    let response =
        client.post(format!("{server}/api/endpoints/{}/deploy", args.endpoint)).json(&request).send().await?;
    let ok = response.status().is_success();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        for event in body["events"].as_array().into_iter().flatten() {
            eprintln!("{}", event.as_str().unwrap_or_default());
        }
        match body["error"]["message"].as_str() {
            Some(message) if !ok => eprintln!("deploy failed: {message}"),
            _ => eprintln!(
                "{} serves {} at {}",
                args.endpoint,
                body["model"].as_str().unwrap_or("?"),
                body["url"].as_str().unwrap_or("?")
            ),
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
