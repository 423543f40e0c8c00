use std::borrow::Cow;

/// What can go wrong in a repository call, in terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No row matched - including rows that exist but belong to another tenant.
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference constraint refused the write (e.g. a duplicate agent name).
    #[error("conflict: {0}")]
    Conflict(Cow<'static, str>),
    /// Input that the database layer refuses before touching the database.
    #[error("invalid: {0}")]
    Invalid(Cow<'static, str>),
    /// Anything else: connection loss, a bug in a query. Logged in detail, shown to users as a generic error.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    /// A constraint's name or the database's message says how our schema is built, not what the user did:
    /// it goes to the log, and the error carries a plain sentence a caller may show (callers that know
    /// better, such as a duplicate agent name, replace it with their own).
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                tracing::debug!(constraint = %constraint_description(db.as_ref()), "unique constraint refused a write");
                Self::Conflict(Cow::Borrowed(ALREADY_EXISTS))
            }
            sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => {
                tracing::debug!(constraint = %constraint_description(db.as_ref()), "reference constraint refused a write");
                Self::Conflict(Cow::Borrowed("a referenced record does not exist"))
            }
            sqlx::Error::Database(ref db) if db.is_check_violation() => {
                tracing::debug!(constraint = %constraint_description(db.as_ref()), "check constraint refused a write");
                Self::Invalid(Cow::Borrowed(OUT_OF_RANGE))
            }
            other => Self::Other(other),
        }
    }
}

/// What a unique constraint's refusal says (the constraint itself is logged, never shown).
pub const ALREADY_EXISTS: &str = "that already exists";
/// What a check constraint's refusal says.
pub const OUT_OF_RANGE: &str = "a value is outside what is allowed";

fn constraint_description(e: &dyn sqlx::error::DatabaseError) -> String {
    match e.constraint() {
        Some(name) => format!("constraint {name}"),
        // SQLite does not name constraints in errors; its message names the columns and holds no values.
        None => e.message().to_string(),
    }
}
