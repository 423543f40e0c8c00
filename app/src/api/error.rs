//! The error type of every server function: what the user is told, kept apart from what is logged.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Missing, or belonging to someone else: the two are indistinguishable on purpose.
    #[error("Not found.")]
    NotFound,
    /// The request was refused; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// A fault on our side. The detail is in the server log under `reference`; the user sees only that.
    #[error("Something went wrong on our side. Please try again; if it persists, contact support and quote reference {reference}.")]
    Internal { reference: String },
    /// The request never reached the server or its answer could not be read.
    #[error("Could not reach DeployClaw ({0}). Check your connection and try again.")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) => {
                AppError::Invalid(format!("The request was malformed: {m}"))
            }
            other => AppError::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// Logs `detail` with a fresh reference and returns the user-facing error carrying that reference.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        let reference = uuid::Uuid::now_v7().simple().to_string()[..12].to_string();
        tracing::error!(%reference, error = %detail, "internal error in a server function");
        AppError::Internal { reference }
    }
}

#[cfg(feature = "ssr")]
impl From<deployclaw::db::DbError> for AppError {
    fn from(e: deployclaw::db::DbError) -> Self {
        use deployclaw::db::DbError;
        match e {
            DbError::NotFound => AppError::NotFound,
            DbError::Invalid(m) | DbError::Conflict(m) => AppError::Invalid(m.into_owned()),
            DbError::Other(source) => AppError::internal(&source),
        }
    }
}
