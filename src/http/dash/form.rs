//! A submitted form (`application/x-www-form-urlencoded`): a field that cannot be read is a 422 page naming it,
//! text with a NUL character is refused, and the CSRF field (checked by the session guard) is ignored.

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::layout::PageError;
use crate::error::AppError;

/// A form body of type `T` (unknown fields are ignored, so the CSRF field needs no place in `T`).
#[derive(Debug, Clone)]
pub struct Form<T>(pub T);

/// Parses a form body (also used for query strings of filter forms).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.contains(&0) || form_urlencoded::parse(bytes).any(|(_, v)| v.contains('\0')) {
        return Err(AppError::field("form", "text may not contain a NUL character"));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let field = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
            .unwrap_or(if path == "." { "form".to_owned() } else { path });
        AppError::field(field, message)
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError(AppError::invalid("the form could not be read")).into_response())?;
        parse(&bytes).map(Form).map_err(|e| PageError(e).into_response())
    }
}
