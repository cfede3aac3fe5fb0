//! Errors a user must act on, each naming the flag, key or file at fault. They map to exit 2;
//! anything else that stops a run is `anyhow` with context and maps to exit 3.

use std::path::PathBuf;

/// Bad usage or configuration: exit 2, nothing run, nothing written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {name}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{name}: {reason}")]
    Rejected { name: String, reason: String },
    #[error("unknown config key '{key}' in {}", path.display())]
    UnknownKey { key: String, path: PathBuf },
    #[error("config file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// A result file (`merge`, `compare`, `--baseline`) that cannot be used.
    #[error("result file {}: {reason}", path.display())]
    ResultFile { path: PathBuf, reason: String },
}
