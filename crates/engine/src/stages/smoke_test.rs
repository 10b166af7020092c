//! The smoke-test stage: the test rows, label column dropped, sent to an endpoint as `text/csv`;
//! status, row count and optionally accuracy checked. `ask` is shared with the champion gate.

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
    let answers = ask(context, endpoint, data, log).await?;
    let accuracy = answers.accuracy();
    let rows = answers.labels.len();
    line(log, &format!("{rows} rows answered; accuracy {accuracy:.4}")).await;
    let output = SmokeTestOutput { rows, accuracy, status: 200 };
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

/// An endpoint's answers to labelled rows, one per row.
pub(crate) struct Answers {
    pub labels: Vec<String>,
    pub predictions: Vec<String>,
}

impl Answers {
    /// The share of answers equal to their label.
    pub fn accuracy(&self) -> f64 {
        let correct = self.labels.iter().zip(&self.predictions).filter(|(l, p)| l.trim() == p.trim()).count();
        correct as f64 / self.labels.len().max(1) as f64
    }

    /// The root mean squared error of numeric answers; an answer or label that is not a number is an error.
    pub fn rmse(&self) -> Result<f64, String> {
        let mut sum = 0.0;
        for (label, predicted) in self.labels.iter().zip(&self.predictions) {
            let number = |text: &str| {
                text.trim().parse::<f64>().map_err(|_| format!("`{}` is not a number", names::excerpt(text.trim(), 40)))
            };
            let error = number(predicted)? - number(label)?;
            sum += error * error;
        }
        Ok((sum / self.labels.len().max(1) as f64).sqrt())
    }
}

/// Sends `data`'s rows (label column dropped) to `endpoint` as `text/csv`, one request.
pub(crate) async fn ask(
    context: &RunContext,
    endpoint: &str,
    data: &str,
    log: &mut Log,
) -> Result<Answers, StageFailure> {
    let path = context.source_dir.join(data);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| StageFailure::failed(format!("reading test data {}: {e}", path.display())))?;
    let (labels, rows) = split_labels(&text);
    if rows.is_empty() {
        return Err(StageFailure::failed(format!("{} has no rows to test with", path.display())));
    }
    let request = rows.join("\n") + "\n";
    let body = match super::deploy_managed::hosted_on(&context.resolved, endpoint) {
        Some(settings) => {
            line(log, &format!("InvokeEndpoint {endpoint} on SageMaker with {} rows (text/csv)", rows.len())).await;
            let answer =
                super::deploy_managed::invoke(context, endpoint, settings, "text/csv", request.into_bytes()).await?;
            String::from_utf8_lossy(&answer).into_owned()
        }
        None => post(context, endpoint, request, log).await?,
    };
    let predictions: Vec<String> = body.lines().map(str::to_owned).collect();
    if predictions.len() != rows.len() {
        return Err(StageFailure::failed(format!(
            "endpoint {endpoint} answered {} predictions for {} rows",
            predictions.len(),
            rows.len()
        )));
    }
    Ok(Answers { labels: labels.into_iter().map(str::to_owned).collect(), predictions })
}

/// Sends rows to an endpoint this process serves; its answer, unless it is not a success.
async fn post(context: &RunContext, endpoint: &str, rows: String, log: &mut Log) -> Result<String, StageFailure> {
    let url = format!("{}/endpoints/{endpoint}/invocations", context.engine.router_url());
    line(log, &format!("POST {url} with {} rows (text/csv)", rows.lines().count())).await;
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| StageFailure::failed(e.to_string()))?;
    let response = client
        .post(&url)
        .header("content-type", "text/csv")
        .header("accept", "text/csv")
        .body(rows)
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
    Ok(body)
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
