//! The one error type of the built-in algorithms; messages go to `/opt/ml/output/failure` and HTTP 400 bodies.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the training contract could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A hyperparameter is unknown or does not parse.
    #[error("{0}")]
    Hyperparameter(String),
    /// A channel's data cannot be trained on.
    #[error("{0}")]
    Data(String),
    /// `model.json` is missing or not a model this version can load.
    #[error("{0}")]
    Model(String),
    /// An invocation's rows cannot be predicted.
    #[error("{0}")]
    Request(String),
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
