//! What each stage kind produces when it succeeds: a struct per kind, stored as JSON with the
//! stage and read back by kind, so a later stage that needs an output gets it or an error, never
//! a default. (A failed stage keeps what it had found as loose JSON, for people to read.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The output of a succeeded (or reused) stage.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum StageOutput {
    Checkout(CheckoutOutput),
    Build(ImageOutput),
    Train(TrainOutput),
    Register(RegisterOutput),
    Deploy(DeployOutput),
    SmokeTest(SmokeTestOutput),
    Gate(GateOutput),
    AbTest(AbTestOutput),
    Champion(ChampionOutput),
    Approval(ApprovalOutput),
    Shell(ShellOutput),
}

/// The source the run uses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckoutOutput {
    pub source: PathBuf,
    pub git: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<bool>,
}

/// An image the run built (or, for the built-in algorithm's image, made), with its SBOM.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageOutput {
    pub image: String,
    pub size_bytes: u64,
    pub packages: u64,
    pub sbom_uri: String,
    pub sbom_sha256: String,
    /// `<registry>/<image>@<digest>`, for an image pushed to a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

/// A completed training job and its stored model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOutput {
    pub job: String,
    pub algorithm: String,
    pub hyperparameters: BTreeMap<String, String>,
    /// sha256 of each channel's file, or of each file in its folder.
    pub data: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOutput>,
    pub metrics: BTreeMap<String, f64>,
    pub status: store::TrainingJobStatus,
    pub model_uri: String,
    pub model_sha256: String,
    /// The training channel's features, for drift checks; `None` when it is not a CSV of numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Box<crate::Baseline>>,
}

/// A registered model version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterOutput {
    pub model_group: String,
    pub model_version: i64,
}

/// What an endpoint serves after a deploy stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeployOutput {
    /// A registered model version (registered by the deploy itself when no register stage came first).
    Version {
        endpoint: String,
        model_group: String,
        model_version: i64,
        instances: u32,
        events: Vec<String>,
        url: String,
    },
    /// A serial inference pipeline.
    Chain { endpoint: String, url: String, chain: Vec<String> },
    /// A multi-model endpoint.
    MultiModel { endpoint: String, url: String, multi_model: PathBuf, memory_budget_bytes: u64 },
    /// A registered model version on a SageMaker endpoint: its ARN, the endpoint configuration
    /// it serves and the SageMaker model (`<group>-v<version>`).
    SageMaker {
        endpoint: String,
        arn: String,
        config: String,
        model: String,
        model_group: String,
        model_version: i64,
        instances: u32,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SmokeTestOutput {
    pub rows: usize,
    pub accuracy: f64,
    pub status: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GateOutput {
    /// The metrics the gate checked, with their values.
    pub metrics: BTreeMap<String, f64>,
}

/// An A/B test that promoted its challenger.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AbTestOutput {
    pub endpoint: String,
    pub p_value: f64,
    pub decision: String,
    pub kept: String,
    pub why: String,
    /// Each variant's labelled answers, by variant name.
    #[serde(flatten)]
    pub variants: BTreeMap<String, VariantScore>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantScore {
    pub labelled: u64,
    pub correct: u64,
    pub accuracy: f64,
}

/// A champion gate's two scores on the same rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChampionOutput {
    /// `accuracy` or `rmse`.
    pub metric: String,
    pub candidate: f64,
    /// `None` when nothing was served to compare with.
    pub champion: Option<f64>,
    /// What the champion endpoint served (its variants' models).
    pub champion_model: Option<String>,
    pub margin: f64,
    pub verdict: String,
}

/// An approval's decision, recorded when someone approved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalOutput {
    pub decision: store::ApprovalStatus,
    pub by: String,
    pub reason: String,
    pub model_group: Option<String>,
    pub model_version: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShellOutput {
    pub exit_code: i32,
}

impl StageOutput {
    /// Reads back a stored output of a stage of kind `kind` (as written in files).
    pub fn parse(kind: &str, value: serde_json::Value) -> Result<StageOutput, serde_json::Error> {
        use serde::de::Error as _;
        Ok(match kind {
            "checkout" => StageOutput::Checkout(serde_json::from_value(value)?),
            "build" => StageOutput::Build(serde_json::from_value(value)?),
            "train" => StageOutput::Train(serde_json::from_value(value)?),
            "register" => StageOutput::Register(serde_json::from_value(value)?),
            "deploy" => StageOutput::Deploy(serde_json::from_value(value)?),
            "smoke-test" => StageOutput::SmokeTest(serde_json::from_value(value)?),
            "gate" => StageOutput::Gate(serde_json::from_value(value)?),
            "ab-test" => StageOutput::AbTest(serde_json::from_value(value)?),
            "champion" => StageOutput::Champion(serde_json::from_value(value)?),
            "approval" => StageOutput::Approval(serde_json::from_value(value)?),
            "shell" => StageOutput::Shell(serde_json::from_value(value)?),
            other => return Err(serde_json::Error::custom(format!("no stage kind {other}"))),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The model version the stage registered, if it did.
    pub fn registered(&self) -> Option<(&str, i64)> {
        match self {
            StageOutput::Register(r) => Some((&r.model_group, r.model_version)),
            StageOutput::Deploy(
                DeployOutput::Version { model_group, model_version, .. }
                | DeployOutput::SageMaker { model_group, model_version, .. },
            ) => Some((model_group, *model_version)),
            _ => None,
        }
    }

    pub fn checkout(&self) -> Option<&CheckoutOutput> {
        if let StageOutput::Checkout(o) = self { Some(o) } else { None }
    }

    pub fn build(&self) -> Option<&ImageOutput> {
        if let StageOutput::Build(o) = self { Some(o) } else { None }
    }

    pub fn train(&self) -> Option<&TrainOutput> {
        if let StageOutput::Train(o) = self { Some(o) } else { None }
    }

    pub fn smoke_test(&self) -> Option<&SmokeTestOutput> {
        if let StageOutput::SmokeTest(o) = self { Some(o) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_output_is_an_error_not_a_default() {
        let trained = serde_json::json!({
            "job": "iris-1", "algorithm": "builtin:decision-tree", "hyperparameters": {}, "data": {},
            "metrics": {}, "status": "Completed", "model_sha256": "ab"
        });
        let error = StageOutput::parse("train", trained.clone()).unwrap_err();
        assert!(error.to_string().contains("model_uri"), "{error}");
        let mut complete = trained;
        complete["model_uri"] = "file:///m.tar.gz".into();
        let parsed = StageOutput::parse("train", complete.clone()).unwrap();
        assert_eq!(parsed.train().unwrap().model_uri, "file:///m.tar.gz");
        assert_eq!(parsed.to_json(), complete, "stored and read back unchanged");
    }

    #[test]
    fn deploy_outputs_read_back_as_what_they_deployed() {
        let chain = serde_json::json!({ "endpoint": "e", "url": "u", "chain": ["a", "b"] });
        assert!(matches!(
            StageOutput::parse("deploy", chain).unwrap(),
            StageOutput::Deploy(DeployOutput::Chain { .. })
        ));
        let version = serde_json::json!({
            "endpoint": "e", "url": "u", "model_group": "iris", "model_version": 3, "instances": 1, "events": []
        });
        assert_eq!(StageOutput::parse("deploy", version).unwrap().registered(), Some(("iris", 3)));
        let sagemaker = serde_json::json!({
            "endpoint": "e", "arn": "arn:aws:sagemaker:us-east-1:1:endpoint/e", "config": "e-1", "model": "iris-v4",
            "model_group": "iris", "model_version": 4, "instances": 1
        });
        let parsed = StageOutput::parse("deploy", sagemaker).unwrap();
        assert!(matches!(parsed, StageOutput::Deploy(DeployOutput::SageMaker { .. })));
        assert_eq!(parsed.registered(), Some(("iris", 4)));
    }
}
