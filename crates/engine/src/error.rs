//! The engine's error type.

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file or a parameter is invalid; nothing was recorded.
    #[error(transparent)]
    Pipeline(#[from] pipeline::Error),
    /// State or artifacts could not be read or written.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The container contract could not be carried out.
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    /// A built-in model could not be loaded.
    #[error(transparent)]
    Builtin(#[from] builtin::Error),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A deploy's alarm fired while traffic shifted; the endpoint serves what it served before.
    #[error("rolled back: {0}")]
    RolledBack(String),
    /// A run was asked for a project the server was not given.
    #[error("no project {0} on this server; add it with `sagebrush project add <folder>`")]
    UnknownProject(names::Name),
    /// A request that cannot be carried out as asked, with what to do instead.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}
