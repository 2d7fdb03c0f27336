//! What the admin API's handlers take from a request: the caller (`Caller`, or `Writer` for mutations), a JSON
//! body that refuses unknown fields and names the field it cannot read (`Body`), query parameters likewise
//! (`Params`), and the page of a listing (`PageParams`).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::domain::page::{Cursor, DEFAULT_LIMIT, MAX_LIMIT, Order, PageRequest};
use crate::error::AppError;
use crate::http::Problem;
use crate::http::client_ip::ClientIp;
use crate::services::audit::Who;
use crate::services::auth::{self, Principal};

/// The authenticated caller of an `/api/v1` route (an admin's access token or an API key), and their address.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub ip: Option<String>,
}

impl Caller {
    /// For the audit log.
    pub fn who(&self) -> Who {
        Who::of(&self.principal, self.ip.clone())
    }
}

/// A caller who may change things (an `owner`/`admin`, or a `write` key); others get 403.
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

impl Writer {
    pub fn who(&self) -> Who {
        self.0.who()
    }
}

/// 401 with the `WWW-Authenticate` challenge.
pub fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"vpnshop\""));
    response
}

/// The client's address as the rate limits see it (behind trusted proxies).
pub fn client_ip(parts: &Parts, state: &AppState) -> Option<String> {
    ClientIp::new(&state.settings.http.trusted_proxies).of_request(parts).map(|ip| ip.to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("send `Authorization: Bearer <access token or API key>`"));
        };
        let Some(bearer) = value.to_str().ok().and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }) else {
            return Err(unauthorized("send `Authorization: Bearer <access token or API key>`"));
        };
        match auth::authenticate(&state.pool, &state.auth, bearer).await {
            Ok(Some(principal)) => {
                let caller = Caller { principal, ip: client_ip(parts, state) };
                parts.extensions.insert(caller.clone());
                Ok(caller)
            }
            Ok(None) => Err(unauthorized("the token or key is not valid (expired, revoked or malformed)")),
            Err(e) => Err(e.into_response()),
        }
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.principal.can_write() {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "this key or account may only read (a `write` key or an admin account can change things)",
            )
            .into_response());
        }
        Ok(Writer(caller))
    }
}

/// The field a serde error is about: the path, or for an unknown field its name.
fn field_of(path: &serde_path_to_error::Path, message: &str) -> String {
    let path = path.to_string();
    let named = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
        .and_then(|rest| rest.split('`').next());
    match (named, path.as_str()) {
        // an unknown field is already the last step of the path; a missing one is not
        (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, ".") => "body".to_owned(),
        (None, path) => path.to_owned(),
    }
}

/// A JSON body: `application/json`, within the body limit, every field known; errors name the field (422), a
/// body that is not JSON at all is 400.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                "send the body as `Content-Type: application/json`",
            )
            .into_response());
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            let title = status.canonical_reason().unwrap_or("Bad Request");
            Problem::new(status, title, e.body_text()).into_response()
        })?;
        // JSON at all? (400) — then the shape (422, naming the field)
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return Err(
                Problem::new(StatusCode::BAD_REQUEST, "Malformed Body", format!("not valid JSON: {e}")).into_response()
            );
        }
        // the database stores no NUL character: refuse it here, naming the field, rather than fail later
        if bytes.windows(6).any(|w| w == b"\\u0000")
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(field) = nul_in(&value, String::new())
        {
            return Err(Problem::invalid_field(field, "may not contain the NUL character").into_response());
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(value) => Ok(Body(value)),
            Err(e) => {
                let message = e.inner().to_string();
                let field = field_of(e.path(), &message);
                let reason = message.split(" at line ").next().unwrap_or(&message).to_owned();
                Err(Problem::invalid_field(field, reason).into_response())
            }
        }
    }
}

/// The path of the first string (or key) in `value` that holds a NUL character.
fn nul_in(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".into() } else { path }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, format!("{}[{i}]", if path.is_empty() { "body" } else { &path }))),
        serde_json::Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| if k.contains('\0') { Some(join(&k.replace('\0', ""))) } else { nul_in(v, join(k)) }),
        _ => None,
    }
}

/// Query parameters; unknown ones are refused and errors name the parameter (400).
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(query_problem(name.replace('\0', ""), "may not contain the NUL character"));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Params).map_err(|e| {
            let message = e.inner().to_string();
            query_problem(field_of(e.path(), &message), message)
        })
    }
}

/// A 400 naming the query parameter that is wrong.
fn query_problem(field: String, reason: impl Into<String>) -> Response {
    let mut problem = Problem::invalid_field(field, reason);
    problem.status = StatusCode::BAD_REQUEST.as_u16();
    problem.title = "Invalid Query".into();
    problem.kind = "https://vpnshop.dev/problems/invalid-query".into();
    problem.into_response()
}

/// `limit`, `cursor` and `order` of a listing (flattened into each listing's query struct by hand: serde's
/// flatten does not work with query strings).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<Order>,
}

/// Checks `limit` and `cursor`; a page request.
pub fn page_request(limit: Option<i64>, cursor: Option<&str>, order: Option<Order>) -> Result<PageRequest, AppError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::field("limit", format!("between 1 and {MAX_LIMIT}")));
    }
    let after = match cursor {
        Some(c) if !c.is_empty() => {
            Some(Cursor::decode(c).map_err(|_| AppError::field("cursor", "not a cursor from a previous page"))?)
        }
        _ => None,
    };
    Ok(PageRequest::new(limit, after, order.unwrap_or(Order::Desc)))
}

impl PageParams {
    pub fn request(&self) -> Result<PageRequest, AppError> {
        page_request(self.limit, self.cursor.as_deref(), self.order)
    }
}

/// A page of a listing.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, next: Option<Cursor>) -> Page<T> {
        Page { items, next_cursor: next.map(|c| c.encode()) }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
        price: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        amount: i64,
    }

    fn field(json: &str) -> String {
        let de = &mut serde_json::Deserializer::from_str(json);
        let e = serde_path_to_error::deserialize::<_, Thing>(de).unwrap_err();
        field_of(e.path(), &e.inner().to_string())
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(r#"{"name": 1, "price": {"amount": 1}}"#), "name");
        assert_eq!(field(r#"{"name": "a", "price": {"amount": "x"}}"#), "price.amount");
        assert_eq!(field(r#"{"name": "a", "price": {"amount": 1}, "admin": true}"#), "admin");
        assert_eq!(field(r#"{"name": "a", "price": {"amount": 1, "x": 2}}"#), "price.x");
        assert_eq!(field(r#"{"price": {"amount": 1}}"#), "name");
        assert_eq!(field("1"), "body");
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        assert!(page_request(Some(0), None, None).is_err());
        assert!(page_request(Some(201), None, None).is_err());
        assert!(page_request(Some(200), None, None).is_ok());
        assert!(page_request(None, Some("nope"), None).is_err());
        assert_eq!(page_request(None, None, None).unwrap().limit, DEFAULT_LIMIT);
    }
}

/// The name of the route's path parameter when it has just one (`/plans/{id}` → `id`), else `path`.
fn only_param(parts: &Parts) -> String {
    let route = parts.extensions.get::<axum::extract::MatchedPath>().map(|m| m.as_str()).unwrap_or("");
    let mut names = route.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'));
    match (names.next(), names.next()) {
        (Some(name), None) => name.to_owned(),
        _ => "path".to_owned(),
    }
}

/// Path parameters; a value that does not parse is a 400 problem naming the parameter.
#[derive(Debug, Clone)]
pub struct PathOf<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathOf<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathOf(value)),
            Err(e) => {
                use axum::extract::path::ErrorKind;
                use axum::extract::rejection::PathRejection;
                let name = match &e {
                    PathRejection::FailedToDeserializePathParams(inner) => match inner.kind() {
                        ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => {
                            key.clone()
                        }
                        _ => only_param(parts),
                    },
                    _ => only_param(parts),
                };
                let mut problem = Problem::invalid_field(name, e.body_text());
                problem.status = StatusCode::BAD_REQUEST.as_u16();
                problem.title = "Invalid Path".into();
                problem.kind = "https://vpnshop.dev/problems/invalid-path".into();
                Err(problem.into_response())
            }
        }
    }
}
