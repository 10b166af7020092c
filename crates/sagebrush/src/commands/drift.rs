//! `sagebrush drift`: each feature's population stability index, and an SVG of both distributions.

use std::process::ExitCode;

use engine::{DriftReport, FeatureDrift, Home};
use svg::Document;
use svg::node::element::{Group, Line, Rectangle, Text};

use super::print_json;
use crate::cli::DriftArgs;
use crate::via::Via;

pub async fn drift(home: &Home, args: DriftArgs) -> anyhow::Result<ExitCode> {
    let report = Via::open(home).await?.drift(&args.endpoint, Some(args.window), Some(args.threshold)).await?;
    if let Some(path) = &args.svg {
        std::fs::write(path, chart(&report).to_string())
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
    println!("{:<8} {:>8}  DRIFTED (PSI > {})", "FEATURE", "PSI", report.threshold);
    for feature in &report.features {
        println!("{:<8} {:>8.4}  {}", feature.feature, feature.psi, if feature.drifted { "yes" } else { "no" });
    }
    if report.rows == 0 {
        eprintln!("no captured requests yet: deploy with capture_percent and send it some");
    }
    if let Some(path) = &args.svg {
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

const PANEL_WIDTH: f64 = 360.0;
const PANEL_HEIGHT: f64 = 220.0;
const PLOT_TOP: f64 = 36.0;
const PLOT_BOTTOM: f64 = 180.0;
const MARGIN: f64 = 40.0;
const TRAINING: &str = "#4c78a8";
const CAPTURED: &str = "#f58518";

/// One panel per feature, side by side: the share of training rows (blue) and of captured rows
/// (orange) in each bin.
fn chart(report: &DriftReport) -> Document {
    let panels = report.features.len().max(1) as f64;
    let width = panels * PANEL_WIDTH;
    let title = format!(
        "{}: {} v{}, {} captured rows against the training data",
        report.endpoint, report.model_group, report.model_version, report.rows
    );
    let mut document = Document::new()
        .set("viewBox", (0, 0, width, PANEL_HEIGHT + 10.0))
        .set("width", width)
        .set("height", PANEL_HEIGHT + 10.0)
        .set("font-family", "sans-serif")
        .set("font-size", 11)
        .add(Rectangle::new().set("width", "100%").set("height", "100%").set("fill", "white"))
        .add(Text::new(title).set("x", 10).set("y", 18).set("font-size", 14))
        .add(legend(width));
    for (index, feature) in report.features.iter().enumerate() {
        let panel = panel(feature).set("transform", format!("translate({}, 24)", index as f64 * PANEL_WIDTH));
        document = document.add(panel);
    }
    document
}

fn legend(width: f64) -> Group {
    let mut legend = Group::new().set("transform", format!("translate({}, 8)", width - 200.0));
    for (i, (label, color)) in [("training", TRAINING), ("captured", CAPTURED)].into_iter().enumerate() {
        let x = i as f64 * 90.0;
        legend = legend
            .add(Rectangle::new().set("x", x).set("y", 2).set("width", 12).set("height", 12).set("fill", color))
            .add(Text::new(label).set("x", x + 16.0).set("y", 12));
    }
    legend
}

fn panel(feature: &FeatureDrift) -> Group {
    let bins = feature.expected.len().max(1);
    let tallest = feature.expected.iter().chain(&feature.actual).copied().fold(0.0_f64, f64::max).max(1e-9);
    let slot = (PANEL_WIDTH - 2.0 * MARGIN) / bins as f64;
    let bar = slot * 0.4;
    let height = |share: f64| share / tallest * (PLOT_BOTTOM - PLOT_TOP);
    let verdict = if feature.drifted { " (drifted)" } else { "" };
    let mut group = Group::new()
        .set("class", "feature")
        .add(
            Text::new(format!("feature {}: PSI {:.4}{verdict}", feature.feature, feature.psi))
                .set("x", MARGIN)
                .set("y", PLOT_TOP - 12.0)
                .set("font-weight", "bold"),
        )
        .add(
            Line::new()
                .set("x1", MARGIN)
                .set("x2", PANEL_WIDTH - MARGIN)
                .set("y1", PLOT_BOTTOM)
                .set("y2", PLOT_BOTTOM)
                .set("stroke", "#333"),
        );
    for (bin, (&expected, &actual)) in feature.expected.iter().zip(&feature.actual).enumerate() {
        let x = MARGIN + bin as f64 * slot + slot * 0.1;
        for (offset, share, color, class) in
            [(0.0, expected, TRAINING, "training"), (bar, actual, CAPTURED, "captured")]
        {
            group = group.add(
                Rectangle::new()
                    .set("class", class)
                    .set("x", x + offset)
                    .set("y", PLOT_BOTTOM - height(share))
                    .set("width", bar)
                    .set("height", height(share))
                    .set("fill", color),
            );
        }
    }
    // The bin edges under the axis, every other one when they are many.
    let step = if feature.edges.len() > 5 { 2 } else { 1 };
    for (i, edge) in feature.edges.iter().enumerate().step_by(step) {
        let x = MARGIN + (i + 1) as f64 * slot;
        group = group.add(
            Text::new(format!("{edge:.3}"))
                .set("x", x)
                .set("y", PLOT_BOTTOM + 14.0)
                .set("text-anchor", "middle")
                .set("font-size", 9),
        );
    }
    group
}
