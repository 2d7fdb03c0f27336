//! Customers (`/users`): search, one customer with their counts, ban and unban.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, Caller, Page, Params, PathOf, Writer, page_request};
use crate::app::AppState;
use crate::db::users::{UserCounts, UserListRow};
use crate::domain::page::Order;
use crate::domain::{Currency, Language};
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::users;

/// A customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub language: Language,
    /// The currency they pay in (fixed when first met).
    pub currency: Option<Currency>,
    pub created_at: DateTime<Utc>,
    /// Set while banned: the bot answers them with one notice and nothing else.
    pub banned_at: Option<DateTime<Utc>>,
    pub ban_reason: Option<String>,
    pub trial_used_at: Option<DateTime<Utc>>,
    /// When a message to them last failed because they blocked the bot.
    pub blocked_bot_at: Option<DateTime<Utc>>,
}

impl From<UserListRow> for User {
    fn from(r: UserListRow) -> Self {
        User {
            id: r.id,
            telegram_id: r.telegram_id,
            username: r.username,
            first_name: r.first_name,
            language: r.language,
            currency: r.currency,
            created_at: r.created_at,
            banned_at: r.banned_at,
            ban_reason: r.ban_reason,
            trial_used_at: r.trial_used_at,
            blocked_bot_at: r.blocked_bot_at,
        }
    }
}

/// A customer with their orders, payments and active subscriptions counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: User,
    pub orders: i64,
    pub payments: i64,
    pub active_subscriptions: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// A Telegram id (digits, exact) or a username prefix (with or without `@`, any case).
    pub q: Option<String>,
    pub banned: Option<bool>,
    pub language: Option<Language>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// By id: `desc` (newest first, the default) or `asc`.
    pub order: Option<Order>,
}

/// Customers, newest first, filtered (the filters combine).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = Page<User>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    _caller: Caller,
    Params(query): Params<UserQuery>,
) -> AppResult<Json<Page<User>>> {
    let page = page_request(query.limit, query.cursor.as_deref(), query.order)?;
    let mut filter = users::parse_query(query.q.as_deref().unwrap_or(""))?;
    filter.banned = query.banned;
    filter.language = query.language;
    let (rows, next) = users::list(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(User::from)))
}

fn detail(user: UserListRow, counts: UserCounts) -> UserDetail {
    UserDetail {
        user: user.into(),
        orders: counts.orders,
        payments: counts.payments,
        active_subscriptions: counts.active_subscriptions,
    }
}

/// One customer, with their orders, payments and active subscriptions counted.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    responses((status = 200, body = UserDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    _caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<UserDetail>> {
    let (user, counts) = users::detail(&state.pool, id).await?;
    Ok(Json(detail(user, counts)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// Why (1–500 characters; kept with the ban and in the audit log).
    pub reason: String,
}

/// Ban a customer: from their next message on, the bot tells them once and does nothing else for them. Banning
/// a banned customer changes nothing.
#[utoipa::path(post, path = "/api/v1/users/{id}/ban", tag = "users", request_body = BanRequest,
    params(("id" = i64, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn ban_user(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<BanRequest>,
) -> AppResult<Json<User>> {
    Ok(Json(users::ban(&state.pool, id, &req.reason, &writer.who()).await?.into()))
}

/// Lift a customer's ban. Unbanning a customer who is not banned changes nothing.
#[utoipa::path(post, path = "/api/v1/users/{id}/unban", tag = "users", params(("id" = i64, Path, description = "The user's id")),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn unban_user(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<User>> {
    Ok(Json(users::unban(&state.pool, id, &writer.who()).await?.into()))
}
