//! A job's `/opt/ml` tree, laid out as SageMaker lays it out for File mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, io_error};

/// The paths inside one job's `/opt/ml`.
#[derive(Clone, Debug)]
pub struct OptMl {
    /// The directory that stands in for `/opt/ml`.
    pub root: PathBuf,
}

impl OptMl {
    /// `input/config`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("input/config")
    }
    /// `model`.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }
    /// `output/failure`.
    pub fn failure_file(&self) -> PathBuf {
        self.root.join("output/failure")
    }

    /// Creates the tree for a training job: config files, a copy of each channel's files, empty `model/` and `output/`.
    ///
    /// A channel is a file or a directory; a directory's files are copied flat, as File mode copies S3 objects.
    pub fn create_for_training(
        root: &Path,
        channels: &BTreeMap<String, PathBuf>,
        hyperparameters: &BTreeMap<String, String>,
    ) -> Result<OptMl, Error> {
        let opt_ml = OptMl { root: root.to_path_buf() };
        for dir in ["input/config", "model", "output/data", "checkpoints"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io_error(&path))?;
        }
        let config = opt_ml.config_dir();
        write_json(&config.join("hyperparameters.json"), &serde_json::to_value(hyperparameters).unwrap_or_default())?;
        let input_data_config: serde_json::Map<String, serde_json::Value> = channels
            .keys()
            .map(|name| {
                let spec = serde_json::json!({
                    "TrainingInputMode": "File",
                    "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None",
                });
                (name.clone(), spec)
            })
            .collect();
        write_json(&config.join("inputdataconfig.json"), &input_data_config.into())?;
        write_json(
            &config.join("resourceconfig.json"),
            &serde_json::json!({ "current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0" }),
        )?;
        for (name, source) in channels {
            let target = root.join("input/data").join(name);
            std::fs::create_dir_all(&target).map_err(io_error(&target))?;
            copy_channel(name, source, &target)?;
        }
        Ok(opt_ml)
    }

    /// Creates the tree for a hosting instance: just `model/`, which the caller fills.
    pub fn create_for_hosting(root: &Path) -> Result<OptMl, Error> {
        let opt_ml = OptMl { root: root.to_path_buf() };
        let model = opt_ml.model_dir();
        std::fs::create_dir_all(&model).map_err(io_error(&model))?;
        Ok(opt_ml)
    }

    /// The failure reason the algorithm wrote, cut to SageMaker's 1024 characters.
    ///
    /// Only a regular file is read: the job could make it a link to a file of the host's.
    pub fn failure_reason(&self) -> Option<String> {
        let file = self.failure_file();
        if !std::fs::symlink_metadata(&file).ok()?.is_file() {
            return None;
        }
        let text = std::fs::read_to_string(file).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.chars().take(1024).collect())
    }
}

fn copy_channel(name: &str, source: &Path, target: &Path) -> Result<(), Error> {
    let missing = || Error::MissingChannel { channel: name.to_owned(), path: source.display().to_string() };
    let metadata = std::fs::metadata(source).map_err(|_| missing())?;
    if metadata.is_file() {
        let file_name = source.file_name().ok_or_else(missing)?;
        std::fs::copy(source, target.join(file_name)).map_err(io_error(source))?;
        return Ok(());
    }
    for entry in std::fs::read_dir(source).map_err(io_error(source))? {
        let path = entry.map_err(io_error(source))?.path();
        if path.is_file()
            && let Some(file_name) = path.file_name()
        {
            std::fs::copy(&path, target.join(file_name)).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), Error> {
    std::fs::write(path, value.to_string()).map_err(io_error(path))
}
