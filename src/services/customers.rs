//! Customers as operators look them up in the dashboard: search by Telegram id, @username or name, and one
//! customer's whole record — orders, payments, subscriptions and what was said in their chat (what the shop
//! still keeps: the inbox of updates they sent, the bot's outbox and broadcasts). Bans go through
//! [`crate::services::users::ban`] / [`unban`](crate::services::users::unban), like the admin API's.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::db::users::{UserFilter, UserListRow};
use crate::db::{self, orders::OrderFilter, orders::OrderRow, payments::PaymentFilter, payments::PaymentListRow};
use crate::db::{subscriptions::SubscriptionFilter, subscriptions::SubscriptionRow, users::UserCounts};
use crate::domain::page::{Cursor, Order, PageRequest};
use crate::error::{AppError, AppResult};
use crate::services::{orders, payments, subscriptions, users};

/// The longest search text.
pub const MAX_QUERY_CHARS: usize = 64;
/// How many of each (orders, payments, subscriptions, messages each way) a customer's page shows.
pub const RECORD_ROWS: i64 = 50;

/// What a search box holds: digits are a Telegram id, `@name` a username prefix (any case), anything else is
/// found in the first name or the username (any case).
pub fn parse_search(q: &str) -> AppResult<UserFilter> {
    let q = q.trim();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::field("q", format!("at most {MAX_QUERY_CHARS} characters")));
    }
    if q.is_empty() || q.starts_with('@') || q.bytes().all(|b| b.is_ascii_digit()) {
        return users::parse_query(q);
    }
    if q.chars().any(char::is_control) {
        return Err(AppError::field("q", "no control characters"));
    }
    Ok(UserFilter { name_contains: Some(q.to_lowercase()), ..UserFilter::default() })
}

/// One page of customers (newest first) matching the search text.
pub async fn search(pool: &PgPool, q: &str, page: &PageRequest) -> AppResult<(Vec<UserListRow>, Option<Cursor>)> {
    let filter = parse_search(q)?;
    users::list(pool, &filter, page).await
}

/// Something said in a customer's chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub at: DateTime<Utc>,
    /// `text`, `photo`, `document`, `button`, `qr`, `broadcast`, `other`.
    pub kind: String,
    /// As plain text (the bot's HTML tags removed).
    pub text: String,
    /// Sent messages: `sent`, `queued`, `failed` (broadcasts: their recipient status).
    pub status: Option<String>,
}

/// A customer with everything the shop holds about them.
#[derive(Debug, Clone)]
pub struct Profile {
    pub user: UserListRow,
    pub counts: UserCounts,
    pub orders: Vec<OrderRow>,
    pub payments: Vec<PaymentListRow>,
    pub subscriptions: Vec<SubscriptionRow>,
    /// From them, newest first.
    pub received: Vec<Said>,
    /// To them, newest first.
    pub sent: Vec<Said>,
}

/// The customer `id` with their newest orders, payments, subscriptions and messages.
pub async fn profile(pool: &PgPool, id: i64) -> AppResult<Profile> {
    let (user, counts) = users::detail(pool, id).await?;
    let newest = PageRequest::new(RECORD_ROWS, None, Order::Desc);
    let orders =
        orders::admin::page(pool, &OrderFilter { user_id: Some(id), ..OrderFilter::default() }, &newest).await?.0;
    let payments =
        payments::admin::list(pool, &PaymentFilter { user_id: Some(id), ..PaymentFilter::default() }, &newest).await?.0;
    let subscriptions = subscriptions::admin::list(
        pool,
        &SubscriptionFilter { user_id: Some(id), ..SubscriptionFilter::default() },
        &newest,
    )
    .await?
    .0;
    let received = db::telegram_updates::of_chat(pool, user.telegram_id, RECORD_ROWS)
        .await?
        .into_iter()
        .map(|u| Said { at: u.received_at, kind: u.kind, text: u.text.unwrap_or_default(), status: None })
        .collect();
    let mut sent: Vec<Said> = db::jobs::outbox_of_chat(pool, user.telegram_id, RECORD_ROWS)
        .await?
        .into_iter()
        .map(|m| Said {
            at: m.created_at,
            kind: m.kind,
            text: plain_text(m.text.as_deref().unwrap_or("")),
            status: Some(
                if m.sent {
                    "sent"
                } else if m.failed {
                    "failed"
                } else {
                    "queued"
                }
                .to_owned(),
            ),
        })
        .collect();
    sent.extend(db::broadcasts::deliveries_to(pool, id, RECORD_ROWS).await?.into_iter().map(|d| Said {
        at: d.done_at.unwrap_or(d.created_at),
        kind: "broadcast".to_owned(),
        text: plain_text(d.text.as_deref().unwrap_or("")),
        status: Some(d.status),
    }));
    sent.sort_by_key(|s| std::cmp::Reverse(s.at));
    sent.truncate(RECORD_ROWS as usize);
    Ok(Profile { user, counts, orders, payments, subscriptions, received, sent })
}

/// Telegram HTML as plain text: tags dropped, the entities Telegram knows decoded.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_a_telegram_id_a_username_prefix_or_a_name() {
        assert_eq!(parse_search("  123 ").unwrap().telegram_id, Some(123));
        assert_eq!(parse_search("@Alice_K").unwrap().username_prefix.as_deref(), Some("alice_k"));
        let name = parse_search("Мария Ива").unwrap();
        assert_eq!((name.name_contains.as_deref(), name.username_prefix), (Some("мария ива"), None));
        assert_eq!(parse_search("").unwrap(), UserFilter::default());
        assert!(matches!(parse_search(&"x".repeat(65)), Err(AppError::Field { field, .. }) if field == "q"));
        assert!(matches!(parse_search("@bad name"), Err(AppError::Field { field, .. }) if field == "q"));
    }

    #[test]
    fn the_bots_html_reads_as_plain_text() {
        assert_eq!(plain_text("<b>Paid</b> &lt;3 &amp; <a href=\"x\">link</a>"), "Paid <3 & link");
    }
}
