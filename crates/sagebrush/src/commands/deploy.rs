//! `deploy`: a registered model version onto an endpoint of the running server, with a traffic
//! policy; `weights`: the traffic shares of its variants.

use std::process::ExitCode;

use engine::Home;
use server::service::{DeployRequest, WeightsRequest};

use crate::cli::{DeployArgs, WeightsArgs};
use crate::via::Via;

pub async fn deploy(home: &Home, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let via = Via::open(home).await?;
    if !via.is_server() {
        anyhow::bail!(crate::exit::Invalid(
            "no sagebrush server is running for this home; start one with `sagebrush server` (it serves the endpoint)"
                .to_owned()
        ));
    }
    let request = DeployRequest {
        model_group: args.model_group.to_string(),
        model_version: args.model_version,
        traffic: Some(args.traffic),
        traffic_percent: args.traffic_percent,
        bake_seconds: args.bake,
        max_error_rate: args.max_error_rate,
        max_p99_ms: args.max_p99_ms,
        variant: args.variant.map(|v| v.to_string()),
        weight: args.weight,
        instances: Some(args.instances),
        instance_type: args.instance_type,
    };
    match via.deploy(&args.endpoint, &request).await {
        Ok(deployed) => {
            if args.json {
                crate::commands::print_json(&deployed)?;
            } else {
                for event in &deployed.events {
                    eprintln!("{event}");
                }
                eprintln!("{} serves {} at {}", args.endpoint, deployed.model, deployed.url);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if let Some(events) = e.downcast_ref::<server::ServiceError>().and_then(|s| s.extra.get("events")) {
                for event in events.as_array().into_iter().flatten() {
                    eprintln!("{}", event.as_str().unwrap_or_default());
                }
            }
            Err(e.context(format!("deploy to {} failed", args.endpoint)))
        }
    }
}

pub async fn weights(home: &Home, args: WeightsArgs) -> anyhow::Result<ExitCode> {
    let request = WeightsRequest {
        weights: args.weights.iter().map(|(variant, weight)| (variant.to_string(), *weight)).collect(),
    };
    let endpoint = Via::open(home).await?.set_weights(&args.endpoint, &request).await?;
    if args.json {
        crate::commands::print_json(&endpoint)?;
        return Ok(ExitCode::SUCCESS);
    }
    let total: f64 = endpoint.variants.iter().map(|v| v.weight).sum();
    println!("{:<20} {:>8} {:>7}  MODEL", "VARIANT", "WEIGHT", "SHARE");
    for v in &endpoint.variants {
        let share = if total > 0.0 { v.weight / total * 100.0 } else { 0.0 };
        println!("{:<20} {:>8} {:>6.1}%  {}", v.name, v.weight, share, names::printable(&v.model));
    }
    Ok(ExitCode::SUCCESS)
}
