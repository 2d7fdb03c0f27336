//! Errors as RFC 9457 problem documents (`application/problem+json`). 5xx causes are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AppError;

/// One field of a request that was refused, and why (RFC 9457's `invalid-params` extension).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

/// An error (RFC 9457 problem details). `type` is stable: clients branch on it, not on `detail`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Validation problems: which field, and why.
    #[serde(rename = "invalid-params", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        Problem {
            kind: format!("https://vpnshop.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            invalid_params: Vec::new(),
            retry_after: None,
        }
    }

    /// A 422 naming the field that is wrong.
    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let (name, reason) = (field.into(), reason.into());
        Problem {
            invalid_params: vec![InvalidParam { name: name.clone(), reason: reason.clone() }],
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid Request", format!("{name}: {reason}"))
        }
    }

    /// Adds `Retry-After: secs` to the answer.
    pub fn retry_after(self, secs: u64) -> Self {
        Problem { retry_after: Some(secs), ..self }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<&AppError> for Problem {
    fn from(e: &AppError) -> Self {
        match e {
            AppError::Invalid(msg) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid Request", msg.clone()),
            AppError::Field { field, message } => Problem::invalid_field(field, message),
            AppError::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, "Not Found", format!("{what} not found")),
            AppError::Conflict(msg) => Problem::new(StatusCode::CONFLICT, "Conflict", msg.clone()),
            AppError::IllegalTransition(t) => Problem::new(StatusCode::CONFLICT, "Conflict", t.to_string()),
            AppError::Unauthorized => Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "authentication required"),
            AppError::Forbidden => Problem::new(StatusCode::FORBIDDEN, "Forbidden", "not allowed"),
            AppError::RateLimited { retry_after_secs } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", e.to_string())
                    .retry_after(*retry_after_secs)
            }
            AppError::Unavailable(what) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", format!("{what} is unavailable"))
            }
            AppError::Internal(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "something went wrong on our side",
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.is_internal() {
            tracing::error!(error = format!("{self:#}"), "request failed");
        }
        Problem::from(&self).into_response()
    }
}
