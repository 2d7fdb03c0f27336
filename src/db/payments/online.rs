//! The online payments' side of the `payments` table (Stripe, Zarinpal): checkout pages, gateway ids, settling,
//! holding for an admin, gateway events seen, and the admins' digests.

use sqlx::{PgConnection, PgExecutor};

use super::PaymentRow;
use crate::domain::Currency;
use crate::domain::status::{PaymentMethod, PaymentStatus};

/// The order's newest pending online payment of this method that has a checkout URL (a second tap reuses it).
pub async fn open_online(
    db: impl PgExecutor<'_>,
    order_id: i64,
    method: PaymentMethod,
    max_age_secs: f64,
) -> sqlx::Result<Option<PaymentRow>> {
    select_payment!(
        "WHERE order_id = $1 AND method = $2 AND status = 'pending' AND checkout_url IS NOT NULL
            AND created_at > now() - make_interval(secs => $3) ORDER BY id DESC LIMIT 1",
        order_id,
        method.as_str(),
        max_age_secs
    )
    .fetch_optional(db)
    .await
}

/// Records where the customer pays and the gateway's id for it.
pub async fn set_checkout(
    db: impl PgExecutor<'_>,
    id: i64,
    method: PaymentMethod,
    processor_id: &str,
    url: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE payments SET checkout_url = $4, updated_at = now(),
                  stripe_session_id = CASE WHEN $2 = 'stripe' THEN $3 ELSE stripe_session_id END,
                  zarinpal_authority = CASE WHEN $2 = 'zarinpal' THEN $3 ELSE zarinpal_authority END
            WHERE id = $1"#,
        id,
        method.as_str(),
        processor_id,
        url
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The payment a gateway's id names: a Checkout Session id, a PaymentIntent id or a Zarinpal authority.
pub async fn by_processor_id(db: impl PgExecutor<'_>, method: PaymentMethod, id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT id FROM payments
            WHERE ($1 = 'stripe' AND (stripe_session_id = $2 OR stripe_payment_intent_id = $2))
               OR ($1 = 'zarinpal' AND zarinpal_authority = $2)
            ORDER BY id LIMIT 1"#,
        method.as_str(),
        id
    )
    .fetch_optional(db)
    .await
}

/// What a gateway tells us about a payment that went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessorRefs {
    pub stripe_payment_intent_id: Option<String>,
    pub stripe_event_id: Option<String>,
    pub zarinpal_ref_id: Option<String>,
    pub zarinpal_card_pan: Option<String>,
    pub zarinpal_card_hash: Option<String>,
}

/// Moves an online payment from `from` to `to` (succeeded, failed, refunded), with what the gateway said.
pub async fn settle_online(
    conn: &mut PgConnection,
    id: i64,
    from: PaymentStatus,
    to: PaymentStatus,
    refs: &ProcessorRefs,
    failure_reason: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE payments SET status = $3, updated_at = now(),
                  decided_at = CASE WHEN $3 = 'succeeded' THEN now() ELSE decided_at END,
                  stripe_payment_intent_id = COALESCE($4, stripe_payment_intent_id),
                  stripe_event_id = COALESCE($5, stripe_event_id),
                  zarinpal_ref_id = COALESCE($6, zarinpal_ref_id),
                  zarinpal_card_pan = COALESCE($7, zarinpal_card_pan),
                  zarinpal_card_hash = COALESCE($8, zarinpal_card_hash),
                  failure_reason = COALESCE($9, failure_reason)
            WHERE id = $1 AND status = $2"#,
        id,
        from.as_str(),
        to.as_str(),
        refs.stripe_payment_intent_id,
        refs.stripe_event_id,
        refs.zarinpal_ref_id,
        refs.zarinpal_card_pan,
        refs.zarinpal_card_hash,
        failure_reason,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Holds a payment for an admin (the gateway's amount or currency is not ours, …); true the first time.
pub async fn flag(db: impl PgExecutor<'_>, id: i64, reason: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE payments SET flagged_at = now(), failure_reason = $2, updated_at = now() WHERE id = $1 AND flagged_at IS NULL",
        id,
        reason
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Pending online payments of `method` older than `min_age_secs` (for reconciliation and expiry), oldest first.
pub async fn pending_online(
    db: impl PgExecutor<'_>,
    method: PaymentMethod,
    min_age_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<PaymentRow>> {
    select_payment!(
        "WHERE method = $1 AND status = 'pending' AND created_at < now() - make_interval(secs => $2)
          ORDER BY id LIMIT $3",
        method.as_str(),
        min_age_secs,
        limit
    )
    .fetch_all(db)
    .await
}

/// Records a gateway event once: true the first time this (provider, event id) is seen.
pub async fn record_event(
    db: impl PgExecutor<'_>,
    provider: &str,
    event_id: &str,
    kind: &str,
    payload: &serde_json::Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO webhook_events (provider, event_id, kind, payload, processed_at) VALUES ($1, $2, $3, $4, now())
         ON CONFLICT DO NOTHING",
        provider,
        event_id,
        kind,
        payload
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a gateway event was recorded already.
pub async fn event_seen(db: impl PgExecutor<'_>, provider: &str, event_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM webhook_events WHERE provider = $1 AND event_id = $2) AS "seen!""#,
        provider,
        event_id
    )
    .fetch_one(db)
    .await
}

/// An online payment the admins have not been told of yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: i64,
    pub order_id: i64,
    pub method: PaymentMethod,
    pub amount_minor: i64,
    pub currency: Currency,
}

/// Takes up to `limit` settled online payments nobody announced yet, marking them announced (in the caller's
/// transaction: roll back and they are announced again).
pub async fn take_unannounced(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Announcement>> {
    sqlx::query_as!(
        Announcement,
        r#"UPDATE payments SET announced_at = now()
            WHERE id IN (SELECT id FROM payments WHERE status = 'succeeded' AND announced_at IS NULL
                          ORDER BY decided_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, order_id, method AS "method: PaymentMethod", amount_minor, currency AS "currency: Currency""#,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Whether another payment of the order took money already (the order cannot take a second one).
pub async fn other_settled(db: impl PgExecutor<'_>, order_id: i64, payment_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM payments WHERE order_id = $1 AND id <> $2
                           AND status IN ('accepted', 'auto_accepted', 'succeeded')) AS "x!""#,
        order_id,
        payment_id
    )
    .fetch_one(db)
    .await
}

/// A payment's public id (a UUID: unique across every install, unlike `id`).
pub async fn public_id(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<uuid::Uuid>> {
    sqlx::query_scalar!("SELECT public_id FROM payments WHERE id = $1", id).fetch_optional(db).await
}
