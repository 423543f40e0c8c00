//! The error every settings check returns: it names the configuration key at fault. A leaf, so that each
//! capability can validate its own settings (billing's plans, say) without importing the configuration loader.

use std::path::PathBuf;

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Parse(String),
}

impl ConfigError {
    pub fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { key, message: message.into() }
    }
}
