//! The subscription lifecycle: `pending → active → limited | expired | revoked`, `limited → active` (top-up),
//! `expired → active` (renewal). Every change locks the row, checks the current state, updates the desired
//! state of its clients and enqueues the node work and the notice — all in one transaction.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::config::JobSettings;
use crate::db::{self, clients::ClientRow, subscriptions::SubscriptionRow};
use crate::domain::status::{Presence, SubscriptionStatus};
use crate::error::{AppError, AppResult};
use crate::services::notify::{self, Notice, UserNotice};
use crate::services::queue::JobSpec;
use crate::services::servers::Actor;

pub mod admin;

pub const PLACE_KIND: &str = "subscription.place";
pub const END_KIND: &str = "subscription.end";
pub const NODE_APPLY_KIND: &str = "node.apply";

/// What a new subscription is made of (from a paid order's plan, or the trial settings).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub user_id: i64,
    pub order_id: Option<i64>,
    pub plan_id: i64,
    pub location_code: String,
    pub is_trial: bool,
    pub seats: i32,
    pub duration_days: i32,
    pub data_cap_bytes: Option<i64>,
}

/// An unguessable token for the subscription feed URL (256 bits, URL-safe).
fn new_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Creates a pending subscription in the caller's transaction and enqueues its placement on a node.
pub async fn create(conn: &mut PgConnection, new: &NewSubscription, jobs: &JobSettings) -> AppResult<i64> {
    let token = new_token();
    let row = db::subscriptions::NewSubscription {
        user_id: new.user_id,
        order_id: new.order_id,
        plan_id: new.plan_id,
        location_code: &new.location_code,
        is_trial: new.is_trial,
        seats: new.seats,
        duration_days: new.duration_days,
        data_cap_bytes: new.data_cap_bytes,
        token: &token,
    };
    let id = db::subscriptions::insert(conn, &row).await?;
    JobSpec::new(PLACE_KIND, serde_json::json!({ "subscription_id": id }))
        .coalesce(format!("place:{id}"))
        .enqueue(&mut *conn, jobs)
        .await?;
    Ok(id)
}

/// How placing a subscription went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Clients were created on this node and its sync enqueued.
    Placed { server_id: i64 },
    /// Nothing to do: placed before, or no longer pending.
    AlreadyDone,
    /// No enabled node of the location has room for its seats.
    NoCapacity,
}

/// Puts a pending subscription on the least-loaded enabled node of its location with room for all its seats,
/// creates one client per seat (own UUID and email tag) and enqueues the node's sync.
pub async fn place(pool: &PgPool, id: i64, jobs: &JobSettings) -> AppResult<Placement> {
    let mut tx = pool.begin().await?;
    let sub = db::subscriptions::lock(&mut tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    if sub.status != SubscriptionStatus::Pending || sub.server_id.is_some() {
        return Ok(Placement::AlreadyDone);
    }
    let candidates = db::clients::lock_candidates(&mut tx, &sub.location_code).await?;
    let seats = i64::from(sub.seats);
    let Some((server_id, _, _)) = candidates
        .iter()
        .filter(|(_, capacity, load)| load + seats <= *capacity)
        .min_by_key(|(id, capacity, load)| (load * 1000 / capacity.max(&1), *id))
        .copied()
    else {
        return Ok(Placement::NoCapacity);
    };
    db::subscriptions::set_server(&mut tx, id, server_id).await?;
    for seat in 1..=sub.seats {
        add_client(&mut tx, &sub, seat, server_id).await?;
    }
    enqueue_node_apply(&mut tx, server_id, jobs).await?;
    tx.commit().await?;
    Ok(Placement::Placed { server_id })
}

async fn add_client(conn: &mut PgConnection, sub: &SubscriptionRow, seat: i32, server_id: i64) -> AppResult<i64> {
    let uuid = Uuid::new_v4();
    let email = format!("s{}-{}-{}", sub.id, seat, &uuid.simple().to_string()[..8]);
    Ok(db::clients::insert(conn, sub.id, seat, server_id, uuid, &email).await?)
}

/// Enqueues a sync of one node (coalesced: one waiting sync per node covers every change before it runs).
pub async fn enqueue_node_apply(conn: &mut PgConnection, server_id: i64, jobs: &JobSettings) -> sqlx::Result<()> {
    JobSpec::new(NODE_APPLY_KIND, serde_json::json!({ "server_id": server_id }))
        .coalesce(format!("node.apply:{server_id}"))
        .enqueue(conn, jobs)
        .await?;
    Ok(())
}

/// `pending → active` once the node has every client of the subscription; enqueues the "ready" notice.
/// Returns whether this call activated it.
pub async fn activate_if_on_node(pool: &PgPool, id: i64, jobs: &JobSettings) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    let Some(sub) = db::subscriptions::lock(&mut tx, id).await? else { return Ok(false) };
    if sub.status != SubscriptionStatus::Pending {
        return Ok(false);
    }
    let clients = db::clients::live_of_subscription(&mut *tx, id).await?;
    if clients.len() != sub.seats as usize || clients.iter().any(|c| c.node_state != Presence::Present) {
        return Ok(false);
    }
    if !db::subscriptions::mark_active(&mut tx, id).await? {
        return Ok(false);
    }
    let notice = UserNotice { user_id: sub.user_id, subscription_id: id, notice: Notice::SubscriptionReady };
    notify::enqueue_user(&mut *tx, &notice, "1", jobs).await?;
    tx.commit().await?;
    metrics::counter!("vpnshop_subscription_transitions_total", "to" => "active").increment(1);
    Ok(true)
}

/// Ends a subscription: `limited` at the data cap, `expired` at the end of its time, `revoked` by an admin or
/// a refund (also before it started). Its clients leave their node and the customer is told. Returns false
/// (and changes nothing) when it is not in a state that can make this move — whoever lost the race.
pub async fn end(pool: &PgPool, id: i64, to: SubscriptionStatus, reason: &str, jobs: &JobSettings) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    let ended = end_in(&mut tx, id, to, reason, true, jobs).await?;
    if ended {
        tx.commit().await?;
        metrics::counter!("vpnshop_subscription_transitions_total", "to" => to.as_str()).increment(1);
    }
    Ok(ended)
}

/// [`end`] in the caller's transaction; `tell` = false leaves telling the customer to the caller.
pub async fn end_in(
    tx: &mut PgConnection,
    id: i64,
    to: SubscriptionStatus,
    reason: &str,
    tell: bool,
    jobs: &JobSettings,
) -> AppResult<bool> {
    let sub = db::subscriptions::lock(&mut *tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    if sub.status == to || !sub.status.can_become(to) {
        return Ok(false);
    }
    if to == SubscriptionStatus::Limited {
        // a top-up may have committed since the caller looked: only the cap as it is now counts
        let used: i64 = db::clients::usage_of(&mut *tx, &[id]).await?.iter().map(|(_, u, d)| u + d).sum();
        if sub.data_cap_bytes.is_none_or(|cap| used < cap) {
            return Ok(false);
        }
    }
    if !db::subscriptions::transition(&mut *tx, id, sub.status, to, Some(reason)).await? {
        return Ok(false);
    }
    for server_id in db::clients::set_desired_for_subscription(&mut *tx, id, false).await? {
        enqueue_node_apply(&mut *tx, server_id, jobs).await?;
    }
    if !tell {
        return Ok(true);
    }
    let notice = match to {
        SubscriptionStatus::Limited => Notice::DataCapReached,
        SubscriptionStatus::Expired => Notice::SubscriptionExpired,
        _ => Notice::SubscriptionRevoked,
    };
    // each transition is its own event (a second cap after a top-up is told too); the transition itself
    // happens once, so this is still one notice per event
    let occurrence = db::now(&mut *tx).await?.timestamp_micros().to_string();
    notify::enqueue_user(
        &mut *tx,
        &UserNotice { user_id: sub.user_id, subscription_id: id, notice },
        &occurrence,
        jobs,
    )
    .await?;
    Ok(true)
}

/// Renews for `days` more (in the caller's transaction, e.g. the payment that paid for it), adding the new
/// period's data (`extra_data_bytes`, none for unlimited plans) to what is left: an active one runs longer,
/// an expired or limited one comes back (`→ active`) with its clients when it has data left.
pub async fn renew(
    conn: &mut PgConnection,
    id: i64,
    days: i32,
    extra_data_bytes: Option<i64>,
    jobs: &JobSettings,
) -> AppResult<()> {
    if days <= 0 {
        return Err(AppError::invalid("a renewal must add days"));
    }
    let sub = db::subscriptions::lock(conn, id).await?.ok_or(AppError::NotFound("subscription"))?;
    if matches!(sub.status, SubscriptionStatus::Pending | SubscriptionStatus::Revoked) {
        return Err(AppError::conflict(format!("a {} subscription cannot be renewed", sub.status)));
    }
    db::subscriptions::extend(conn, id, days).await?;
    let mut cap = sub.data_cap_bytes;
    if let (Some(old), Some(extra)) = (sub.data_cap_bytes, extra_data_bytes.filter(|b| *b > 0)) {
        db::subscriptions::add_data(conn, id, extra).await?;
        cap = Some(old.saturating_add(extra));
    }
    let used: i64 = db::clients::usage_of(&mut *conn, &[id]).await?.iter().map(|(_, u, d)| u + d).sum();
    let has_data = cap.is_none_or(|c| used < c);
    if matches!(sub.status, SubscriptionStatus::Expired | SubscriptionStatus::Limited) && has_data {
        resume(conn, &sub, jobs).await?;
    }
    Ok(())
}

/// Adds data (in the caller's transaction); a limited subscription with data left again comes back.
pub async fn top_up(conn: &mut PgConnection, id: i64, bytes: i64, jobs: &JobSettings) -> AppResult<()> {
    if bytes <= 0 {
        return Err(AppError::invalid("a top-up must add data"));
    }
    let sub = db::subscriptions::lock(conn, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let Some(cap) = sub.data_cap_bytes else {
        return Err(AppError::conflict("this subscription has unlimited data"));
    };
    if !matches!(sub.status, SubscriptionStatus::Active | SubscriptionStatus::Limited) {
        return Err(AppError::conflict(format!("a {} subscription cannot be topped up", sub.status)));
    }
    let Some(new_cap) = cap.checked_add(bytes) else {
        return Err(AppError::conflict("the data cap would be larger than can be counted"));
    };
    db::subscriptions::add_data(conn, id, bytes).await?;
    let used: i64 = db::clients::usage_of(&mut *conn, &[id]).await?.iter().map(|(_, u, d)| u.saturating_add(*d)).sum();
    if sub.status == SubscriptionStatus::Limited && used < new_cap {
        resume(conn, &sub, jobs).await?;
    }
    Ok(())
}

/// `limited | expired → active`: clients wanted on the node again, customer told.
async fn resume(conn: &mut PgConnection, sub: &SubscriptionRow, jobs: &JobSettings) -> AppResult<()> {
    sub.status.check(SubscriptionStatus::Active)?;
    if !db::subscriptions::transition(conn, sub.id, sub.status, SubscriptionStatus::Active, None).await? {
        return Err(AppError::conflict("the subscription changed meanwhile; try again"));
    }
    for server_id in db::clients::set_desired_for_subscription(conn, sub.id, true).await? {
        enqueue_node_apply(conn, server_id, jobs).await?;
    }
    let occurrence = chrono::Utc::now().timestamp_millis().to_string();
    let notice = UserNotice { user_id: sub.user_id, subscription_id: sub.id, notice: Notice::SubscriptionResumed };
    notify::enqueue_user(&mut *conn, &notice, &occurrence, jobs).await?;
    metrics::counter!("vpnshop_subscription_transitions_total", "to" => "active").increment(1);
    Ok(())
}

/// Replaces the subscription's feed URL (it leaked, or someone asked): the old `/sub/{token}` answers 404
/// from now on. Returns the new token. Any subscription that exists may get one.
pub async fn rotate_feed(pool: &PgPool, id: i64, actor: Actor<'_>) -> AppResult<String> {
    let mut tx = pool.begin().await?;
    db::subscriptions::lock(&mut tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let token = new_token();
    db::subscriptions::set_token(&mut tx, id, &token).await?;
    audit(&mut tx, actor, "subscription.rotate_feed", id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(token)
}

async fn audit(
    conn: &mut PgConnection,
    actor: Actor<'_>,
    action: &str,
    id: i64,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    let id = id.to_string();
    let entry = db::audit::AuditEntry {
        actor_kind: actor.kind,
        actor_id: actor.id,
        action,
        entity: "subscription",
        entity_id: Some(&id),
        detail,
        source_ip: None,
    };
    db::audit::record(conn, &entry).await
}

/// Gives one seat a new UUID (a leaked link): the old client leaves the node, a new one joins; the other
/// seats are untouched. The feed URL is replaced too (a leaked link usually leaked with it). Returns the new
/// client.
pub async fn reset_seat(pool: &PgPool, id: i64, seat: i32, jobs: &JobSettings) -> AppResult<ClientRow> {
    let mut tx = pool.begin().await?;
    let new_id = reset_seat_in(&mut tx, id, seat, jobs).await?;
    tx.commit().await?;
    db::clients::find(pool, new_id).await?.ok_or(AppError::NotFound("client"))
}

/// [`reset_seat`] in the caller's transaction; returns the new client's id.
pub async fn reset_seat_in(tx: &mut PgConnection, id: i64, seat: i32, jobs: &JobSettings) -> AppResult<i64> {
    let sub = db::subscriptions::lock(&mut *tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    if sub.status != SubscriptionStatus::Active {
        return Err(AppError::conflict(format!(
            "only an active subscription's devices can be reset (it is {})",
            sub.status
        )));
    }
    let old = db::clients::live_of_subscription(&mut *tx, id)
        .await?
        .into_iter()
        .find(|c| c.seat == seat)
        .ok_or_else(|| AppError::field("seat", format!("this subscription has no device {seat}")))?;
    db::clients::retire(&mut *tx, old.id).await?;
    let new_id = add_client(&mut *tx, &sub, seat, old.server_id).await?;
    db::subscriptions::set_token(&mut *tx, id, &new_token()).await?;
    enqueue_node_apply(&mut *tx, old.server_id, jobs).await?;
    Ok(new_id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_url_safe_and_distinct() {
        let (a, b) = (super::new_token(), super::new_token());
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }
}
