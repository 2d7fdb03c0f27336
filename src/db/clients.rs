//! The `clients` table (one row per seat and UUID) and its `traffic` counters.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::status::Presence;

#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    pub id: i64,
    pub subscription_id: i64,
    pub seat: i32,
    pub server_id: i64,
    pub uuid: Uuid,
    pub email: String,
    pub desired: Presence,
    pub node_state: Presence,
    pub removed_from_node_at: Option<DateTime<Utc>>,
}

/// A client with its raw and accumulated counters (what metering works on).
#[derive(Debug, Clone, PartialEq)]
pub struct MeteredClient {
    pub id: i64,
    pub subscription_id: i64,
    pub email: String,
    pub desired: Presence,
    /// Off the node for longer than the grace the caller gave (database clock): traffic now is a live session.
    pub removed_before_grace: bool,
    pub last_raw_up: i64,
    pub last_raw_down: i64,
}

/// Inserts a client (wanted on its node, not there yet) and its zeroed traffic row.
pub async fn insert(
    conn: &mut PgConnection,
    subscription_id: i64,
    seat: i32,
    server_id: i64,
    uuid: Uuid,
    email: &str,
) -> sqlx::Result<i64> {
    let id = sqlx::query_scalar!(
        r#"INSERT INTO clients (subscription_id, seat, server_id, uuid, email) VALUES ($1, $2, $3, $4, $5)
           RETURNING id"#,
        subscription_id,
        seat,
        server_id,
        uuid,
        email
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("INSERT INTO traffic (client_id) VALUES ($1)", id).execute(&mut *conn).await?;
    Ok(id)
}

macro_rules! select_client {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            ClientRow,
            r#"SELECT id, subscription_id, seat, server_id, uuid, email, desired AS "desired: Presence",
                      node_state AS "node_state: Presence", removed_from_node_at
                 FROM clients "# + $tail
            $(, $arg)*
        )
    };
}

/// The clients a subscription has now (one per seat), in seat order.
pub async fn live_of_subscription(db: impl PgExecutor<'_>, subscription_id: i64) -> sqlx::Result<Vec<ClientRow>> {
    select_client!("WHERE subscription_id = $1 AND desired = 'present' ORDER BY seat", subscription_id)
        .fetch_all(db)
        .await
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<ClientRow>> {
    select_client!("WHERE id = $1", id).fetch_optional(db).await
}

pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<ClientRow>> {
    select_client!("WHERE id = $1 FOR UPDATE", id).fetch_optional(conn).await
}

/// Clients of a node whose desired state differs from what the node has.
pub async fn out_of_sync_on(db: impl PgExecutor<'_>, server_id: i64) -> sqlx::Result<Vec<ClientRow>> {
    select_client!("WHERE server_id = $1 AND desired <> node_state ORDER BY id", server_id).fetch_all(db).await
}

/// Every client that should be on a node (the node's config file lists exactly these).
pub async fn desired_on(db: impl PgExecutor<'_>, server_id: i64) -> sqlx::Result<Vec<ClientRow>> {
    select_client!("WHERE server_id = $1 AND desired = 'present' ORDER BY email", server_id).fetch_all(db).await
}

/// Sets what we want on the node for every live client of a subscription; returns the affected server ids.
pub async fn set_desired_for_subscription(
    conn: &mut PgConnection,
    subscription_id: i64,
    present: bool,
) -> sqlx::Result<Vec<i64>> {
    let (want, was) = if present { ("present", "absent") } else { ("absent", "present") };
    // bringing a subscription back only revives the newest client of each seat
    let rows = sqlx::query_scalar!(
        r#"UPDATE clients c SET desired = $2, updated_at = now()
            WHERE c.subscription_id = $1 AND c.desired = $3
              AND ($2 = 'absent' OR c.id IN (SELECT max(id) FROM clients WHERE subscription_id = $1 GROUP BY seat))
        RETURNING c.server_id"#,
        subscription_id,
        want,
        was
    )
    .fetch_all(conn)
    .await?;
    let mut servers = rows;
    servers.sort_unstable();
    servers.dedup();
    Ok(servers)
}

/// Retires one client (a seat reset): wanted off its node from now on.
pub async fn retire(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE clients SET desired = 'absent', updated_at = now() WHERE id = $1 AND desired = 'present'",
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the node now has (or no longer has) these clients.
pub async fn mark_on_node(conn: impl PgExecutor<'_>, ids: &[i64], present: bool) -> sqlx::Result<()> {
    let state = if present { "present" } else { "absent" };
    sqlx::query!(
        r#"UPDATE clients SET node_state = $2, updated_at = now(),
                  removed_from_node_at = CASE WHEN $2 = 'absent' THEN now() ELSE NULL END
            WHERE id = ANY($1) AND node_state <> $2"#,
        ids,
        state
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Placement load: live clients per enabled server of a location, with capacity, locking those servers.
pub async fn lock_candidates(conn: &mut PgConnection, location: &str) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT s.id, s.capacity::int8 AS "capacity!",
                  (SELECT count(*) FROM clients c WHERE c.server_id = s.id AND c.desired = 'present') AS "load!"
             FROM servers s
            WHERE s.location_code = $1 AND s.enabled AND s.health <> 'host_key_mismatch'
            ORDER BY s.id
              FOR UPDATE OF s"#,
        location
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.capacity, r.load)).collect())
}

/// Every client of a node with its counters, for metering; `grace_secs` after its removal from the node a
/// client's traffic counts as a live session.
pub async fn metered_on(db: impl PgExecutor<'_>, server_id: i64, grace_secs: f64) -> sqlx::Result<Vec<MeteredClient>> {
    sqlx::query_as!(
        MeteredClient,
        r#"SELECT c.id, c.subscription_id, c.email, c.desired AS "desired: Presence",
                  COALESCE(c.node_state = 'absent' AND c.removed_from_node_at < now() - make_interval(secs => $2),
                           false) AS "removed_before_grace!",
                  t.last_raw_up, t.last_raw_down
             FROM clients c JOIN traffic t ON t.client_id = c.id
            WHERE c.server_id = $1"#,
        server_id,
        grace_secs
    )
    .fetch_all(db)
    .await
}

/// Stores new raw counters and adds the deltas, for many clients at once.
pub async fn record_traffic(
    conn: impl PgExecutor<'_>,
    ids: &[i64],
    raw_up: &[i64],
    raw_down: &[i64],
    delta_up: &[i64],
    delta_down: &[i64],
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE traffic t
              SET last_raw_up = u.raw_up, last_raw_down = u.raw_down,
                  up_bytes = t.up_bytes + u.d_up, down_bytes = t.down_bytes + u.d_down, updated_at = now()
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) AS u(id, raw_up, raw_down, d_up, d_down)
            WHERE t.client_id = u.id"#,
        ids,
        raw_up,
        raw_down,
        delta_up,
        delta_down
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Total traffic (up + down) of each subscription over all its clients, past and present.
pub async fn usage_of(db: impl PgExecutor<'_>, subscription_ids: &[i64]) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT c.subscription_id, COALESCE(sum(t.up_bytes), 0)::int8 AS "up!", COALESCE(sum(t.down_bytes), 0)::int8 AS "down!"
             FROM clients c JOIN traffic t ON t.client_id = c.id
            WHERE c.subscription_id = ANY($1)
            GROUP BY c.subscription_id"#,
        subscription_ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.subscription_id, r.up, r.down)).collect())
}

/// Whether any of these clients belongs to a subscription stopped at its data cap (`limited`).
pub async fn any_capped(db: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM clients c JOIN subscriptions s ON s.id = c.subscription_id
                           WHERE c.id = ANY($1) AND s.status = 'limited') AS "x!""#,
        ids
    )
    .fetch_one(db)
    .await
}

/// Forgets that the node has its wanted clients (its core restarted from an older file): the next sync adds
/// them all again. Removal bookkeeping is untouched.
pub async fn mark_all_desired_unsynced(db: impl PgExecutor<'_>, server_id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE clients SET node_state = 'absent', updated_at = now() WHERE server_id = $1 AND desired = 'present'",
        server_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
