//! Charts drawn on the server as SVG: the CLI writes them to files, the dashboard puts them in its pages.

use engine::{DriftReport, FeatureDrift};
use svg::Document;
use svg::node::element::{Group, Line, Rectangle, Text};

const PANEL_WIDTH: f64 = 360.0;
const PANEL_HEIGHT: f64 = 220.0;
const PLOT_TOP: f64 = 36.0;
const PLOT_BOTTOM: f64 = 180.0;
const MARGIN: f64 = 40.0;
const TRAINING: &str = "#4c78a8";
const CAPTURED: &str = "#f58518";

/// One panel per feature, side by side: the share of training rows (blue) and of captured rows
/// (orange) in each bin.
pub fn drift(report: &DriftReport) -> Document {
    let panels = report.features.len().max(1) as f64;
    let width = panels * PANEL_WIDTH;
    let title = format!(
        "{}: {} v{}, {} captured rows against the training data",
        report.endpoint, report.model_group, report.model_version, report.rows
    );
    let mut document = Document::new()
        .set("viewBox", (0, 0, width, PANEL_HEIGHT + 30.0))
        .set("width", width)
        .set("height", PANEL_HEIGHT + 30.0)
        .set("font-family", "sans-serif")
        .set("font-size", 11)
        .add(Rectangle::new().set("width", "100%").set("height", "100%").set("fill", "white"))
        .add(Text::new(title).set("x", 10).set("y", 18).set("font-size", 14))
        .add(legend());
    for (index, feature) in report.features.iter().enumerate() {
        let panel = panel(feature).set("transform", format!("translate({}, 44)", index as f64 * PANEL_WIDTH));
        document = document.add(panel);
    }
    document
}

/// On its own line under the title, so a narrow chart (one feature) does not overlap them.
fn legend() -> Group {
    let mut legend = Group::new().set("transform", "translate(10, 26)");
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

/// A small line chart of one series over time: `points` are (ms, value); `None` values leave gaps.
pub fn series(title: &str, points: &[(i64, Option<f64>)], unit: &str) -> Document {
    const WIDTH: f64 = 320.0;
    const HEIGHT: f64 = 120.0;
    const LEFT: f64 = 44.0;
    const TOP: f64 = 22.0;
    const BOTTOM: f64 = 100.0;
    let tallest = points.iter().filter_map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let top = if tallest > 0.0 { tallest * 1.1 } else { 1.0 };
    let (first, last) = (points.first().map_or(0, |p| p.0), points.last().map_or(1, |p| p.0));
    let span = (last - first).max(1) as f64;
    let x = |at: i64| LEFT + (at - first) as f64 / span * (WIDTH - LEFT - 8.0);
    let y = |value: f64| BOTTOM - value / top * (BOTTOM - TOP);
    let latest = points.iter().rev().find_map(|(_, v)| *v);
    let heading = match latest {
        Some(value) => format!("{title}: {value:.2} {unit}"),
        None => format!("{title}: no traffic"),
    };
    let mut document = Document::new()
        .set("viewBox", (0, 0, WIDTH, HEIGHT))
        .set("width", WIDTH)
        .set("height", HEIGHT)
        .set("class", "chart")
        .set("role", "img")
        .set("aria-label", heading.clone())
        .set("font-family", "sans-serif")
        .set("font-size", 10)
        .add(Text::new(heading).set("x", 4).set("y", 14).set("font-size", 12).set("font-weight", "bold"))
        .add(
            Line::new()
                .set("x1", LEFT)
                .set("x2", WIDTH - 8.0)
                .set("y1", BOTTOM)
                .set("y2", BOTTOM)
                .set("stroke", "#57606a"),
        )
        .add(Text::new(format!("{top:.1}")).set("x", LEFT - 4.0).set("y", TOP + 4.0).set("text-anchor", "end"))
        .add(Text::new("0").set("x", LEFT - 4.0).set("y", BOTTOM).set("text-anchor", "end"))
        .add(
            Text::new(format!("last {} min", ((span / 60_000.0).ceil() as i64).max(1)))
                .set("x", WIDTH - 8.0)
                .set("y", BOTTOM + 14.0)
                .set("text-anchor", "end"),
        );
    // Each run of consecutive values is one polyline.
    let mut run: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    for (at, value) in points {
        match value {
            Some(v) => {
                run.push(format!("{:.1},{:.1}", x(*at), y(*v)));
                // A dot per reading, so that one reading alone shows too.
                document = document.add(
                    svg::node::element::Circle::new()
                        .set("cx", x(*at))
                        .set("cy", y(*v))
                        .set("r", 2)
                        .set("fill", "#0969da"),
                );
            }
            None if !run.is_empty() => lines.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        lines.push(run);
    }
    for line in lines {
        document = document.add(
            svg::node::element::Polyline::new()
                .set("points", line.join(" "))
                .set("fill", "none")
                .set("stroke", "#0969da")
                .set("stroke-width", 2),
        );
    }
    document
}
