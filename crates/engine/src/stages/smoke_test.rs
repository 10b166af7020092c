//! The smoke-test stage: the test rows, label column dropped, sent to an endpoint as `text/csv`; status, row count and optionally accuracy checked.

use super::outputs::SmokeTestOutput;
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    endpoint: &str,
    data: &str,
    min_accuracy: Option<f64>,
    log: &mut Log,
) -> Result<SmokeTestOutput, StageFailure> {
    let path = context.source_dir.join(data);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| StageFailure::failed(format!("reading test data {}: {e}", path.display())))?;
    let (labels, rows) = split_labels(&text);
    if rows.is_empty() {
        return Err(StageFailure::failed(format!("{} has no rows to test with", path.display())));
    }
    let url = format!("{}/endpoints/{endpoint}/invocations", context.engine.router_url());
    line(log, &format!("POST {url} with {} rows (text/csv)", rows.len())).await;
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| StageFailure::failed(e.to_string()))?;
    let response = client
        .post(&url)
        .header("content-type", "text/csv")
        .header("accept", "text/csv")
        .body(rows.join("\n") + "\n")
        .send()
        .await
        .map_err(|e| StageFailure::failed(format!("calling endpoint {endpoint}: {e}")))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        line(log, &body).await;
        return Err(StageFailure::Failed {
            reason: format!("endpoint {endpoint} answered {status}: {}", body.trim()),
            output: serde_json::json!({ "status": status.as_u16() }),
        });
    }
    let predictions: Vec<&str> = body.lines().collect();
    if predictions.len() != rows.len() {
        return Err(StageFailure::failed(format!(
            "endpoint {endpoint} answered {} predictions for {} rows",
            predictions.len(),
            rows.len()
        )));
    }
    let correct = labels.iter().zip(&predictions).filter(|(label, predicted)| label.trim() == predicted.trim()).count();
    let accuracy = correct as f64 / rows.len() as f64;
    line(log, &format!("{} rows answered; accuracy {accuracy:.4} ({correct}/{})", rows.len(), rows.len())).await;
    let output = SmokeTestOutput { rows: rows.len(), accuracy, status: status.as_u16() };
    if let Some(min) = min_accuracy
        && accuracy < min
    {
        return Err(StageFailure::Failed {
            reason: format!("accuracy {accuracy:.4} on {} is below the required {min}", data),
            output: serde_json::to_value(&output).unwrap_or_default(),
        });
    }
    Ok(output)
}

/// Splits `label,f1,f2,...` lines into labels and feature rows, skipping blank lines.
fn split_labels(text: &str) -> (Vec<&str>, Vec<&str>) {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.split_once(',').unwrap_or((line, "")))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::split_labels;

    #[test]
    fn drops_the_label_column_and_blank_lines() {
        let (labels, rows) = split_labels("setosa,5.0,3.5\n\nvirginica,5.8,2.7");
        assert_eq!(labels, ["setosa", "virginica"]);
        assert_eq!(rows, ["5.0,3.5", "5.8,2.7"]);
    }
}
