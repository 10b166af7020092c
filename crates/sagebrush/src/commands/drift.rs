//! `sagebrush drift`: each feature's population stability index, and an SVG of both distributions.

use std::process::ExitCode;

use engine::Home;

use super::print_json;
use crate::cli::DriftArgs;
use crate::via::Via;

pub async fn drift(home: &Home, args: DriftArgs) -> anyhow::Result<ExitCode> {
    let report = Via::open(home).await?.drift(&args.endpoint, Some(args.window), Some(args.threshold)).await?;
    if let Some(path) = &args.svg {
        std::fs::write(path, server::charts::drift(&report).to_string())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} serves {} v{}: {} captured rows (window {}), {} left out",
        report.endpoint, report.model_group, report.model_version, report.rows, report.window, report.skipped
    );
    if report.rows == 0 {
        eprintln!("no captured requests yet: deploy with capture_percent and send it some");
    } else {
        println!("{:<8} {:>8}  DRIFTED (PSI > {})", "FEATURE", "PSI", report.threshold);
        for feature in &report.features {
            println!("{:<8} {:>8.4}  {}", feature.feature, feature.psi, if feature.drifted { "yes" } else { "no" });
        }
    }
    if let Some(path) = &args.svg {
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
