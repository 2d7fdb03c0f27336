//! The one error type of the use cases. `http` turns it into a JSON problem, `bot` into a localized message.

use crate::domain::status::IllegalTransition;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input was understood but is not acceptable; the message says why and is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// One input field is not acceptable: which, and why (safe to show).
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request lost a race or repeats a decision ("already decided"); safe to show.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency (database, node, gateway) cannot be reached right now.
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// Anything else: logged where handled, never shown to clients.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                AppError::Unavailable("database".into())
            }
            _ => AppError::Internal(anyhow::Error::new(e)),
        }
    }
}

impl AppError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        AppError::Invalid(msg.into())
    }

    /// `field` is not acceptable because `message`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Field { field: field.into(), message: message.into() }
    }

    pub fn conflict(msg: impl Into<String>) -> Self {
        AppError::Conflict(msg.into())
    }

    /// Whether this is our fault (5xx) rather than the caller's.
    pub fn is_internal(&self) -> bool {
        matches!(self, AppError::Internal(_) | AppError::Unavailable(_))
    }
}

/// The name of the constraint a database error violated, if it was a constraint violation.
pub fn violated_constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

pub type AppResult<T> = Result<T, AppError>;
