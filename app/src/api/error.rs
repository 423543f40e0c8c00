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
    /// The request is larger than the server accepts; the message says the limit.
    #[error("{0}")]
    TooLarge(String),
    /// Not signed in, or the session ended; the message says why.
    #[error("{0}")]
    SignInRequired(String),
    /// Signed in, but this role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A sensitive change needs a second factor from the last 15 minutes: enter an authenticator code first.
    #[error("For your security, confirm this change with a code from your authenticator app.")]
    TwoFactorRequired,
    /// Too many attempts; the message says how long to wait.
    #[error("{0}")]
    Throttled(String),
    /// The server cannot do this right now (busy, or a service it needs is down); trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side. The detail is in the server log under `reference`; the user sees only that.
    #[error("Something went wrong on our side. Please try again; if it persists, contact support and quote reference {reference}.")]
    Internal { reference: String },
    /// The request never reached the server or its answer could not be read.
    #[error("Could not reach DeployClaw ({0}). Check your connection and try again.")]
    Transport(String),
}

/// The reason given for a request whose fields do not decode into the server function's arguments.
pub const MALFORMED: &str = "The request was malformed: a field is missing or has the wrong type.";

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// Decoding failures. The decoder's own message is dropped: it speaks of serde and byte offsets, not of what
    /// to change, and may quote what was sent.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // On the server: the request's fields do not decode into the arguments (answered 400 by the router,
            // see `server/fn_requests.rs`), or its body could not be read.
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => AppError::Invalid(MALFORMED.into()),
            ServerFnErrorErr::Deserialization(_) if cfg!(feature = "ssr") => AppError::Invalid(MALFORMED.into()),
            // In the browser: the server's answer could not be read.
            ServerFnErrorErr::Deserialization(_) => AppError::Transport("its answer could not be read".into()),
            other => AppError::Transport(other.to_string()),
        }
    }
}

impl AppError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound => 404,
            AppError::Invalid(_) => 400,
            AppError::TooLarge(_) => 413,
            AppError::SignInRequired(_) => 401,
            AppError::Forbidden(_) | AppError::TwoFactorRequired => 403,
            AppError::Throttled(_) => 429,
            AppError::Unavailable(_) => 503,
            AppError::Internal { .. } => 500,
            AppError::Transport(_) => 502,
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

/// An error as a plain API route (not a server function) answers it: the same JSON body and status, never
/// cached.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{header, HeaderValue, StatusCode};
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, axum::Json(self)).into_response();
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}
