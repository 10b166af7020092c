//! The pipeline file, `sagebrush.toml`: parsing, validation with file:line:column errors, and parameter resolution.

mod error;
mod parameters;
mod parse;
mod spec;
mod triggers;

use std::path::Path;

pub use error::{Error, Location};
pub use parameters::{Parameter, ParameterType, SecretSource, Value, parse_override};
pub use spec::{
    Algorithm, BuiltinAlgorithm, ChampionMetric, Channel, DeployPolicy, Ecr, HostingBackend, MetricDefinition,
    MultiModel, Pipeline, Registry, Resolved, SageMakerHosting, SageMakerTraining, Stage, StageKind, Threshold,
    Traffic, TrainingBackend,
};
/// The newest ended runs of a project kept when `[pipeline] keep_runs` does not say.
pub const DEFAULT_KEEP_RUNS: usize = 50;

pub use triggers::{
    CronTrigger, DEFAULT_DRIFT_THRESHOLD, DataTrigger, DriftTrigger, NOTIFY_EVENTS, Notify, NotifyFormat, PollTrigger,
    PushTrigger, Triggers,
};

/// Reads and validates the pipeline file at `path`.
pub fn load(path: &Path) -> Result<Pipeline, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    parse(path, text)
}

/// Validates pipeline `text` as if read from `path`.
pub fn parse(path: &Path, text: String) -> Result<Pipeline, Error> {
    parse::pipeline(path, text)
}

impl Pipeline {
    /// Every parameter's value (overrides, then defaults) substituted into every stage.
    pub fn resolve(&self, overrides: &[(String, String)]) -> Result<Resolved, Error> {
        let parameters = parameters::resolve(&self.parameters, overrides)?;
        for (name, value) in &parameters {
            if let Value::Path(path) = value
                && !self.allow_absolute_paths
                && !parse::inside_project(path)
            {
                return Err(Error::Parameter {
                    parameter: Some(name.clone()),
                    message: format!("parameter `{name}` = {} is outside the project", names::excerpt(path, 80)),
                    hint: Some(
                        "paths are relative to the project folder; to read elsewhere set [pipeline] allow_absolute_paths = true"
                            .to_owned(),
                    ),
                });
            }
        }
        let stages = parse::stages(self, &self.source, &parameters)?;
        Ok(Resolved { parameters, stages })
    }
}
