//! An admin's second factor: the TOTP columns of `admins` (`totp_secret`, `totp_enabled_at`, `totp_last_step`)
//! and the `admin_recovery_codes` table (SHA-256 hex of one-use codes).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// An admin's TOTP state: a secret alone is a pending enrolment; with `enabled_at` it is required at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpState {
    pub username: String,
    pub disabled_at: Option<DateTime<Utc>>,
    pub secret: Option<String>,
    pub enabled_at: Option<DateTime<Utc>>,
    pub last_step: Option<i64>,
}

/// The admin's TOTP state (None when there is no such admin).
pub async fn state(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<Option<TotpState>> {
    sqlx::query_as!(
        TotpState,
        r#"SELECT username, disabled_at, totp_secret AS secret, totp_enabled_at AS enabled_at,
                  totp_last_step AS last_step
           FROM admins WHERE id = $1"#,
        admin_id
    )
    .fetch_optional(db)
    .await
}

/// The same, with the admin's row locked until the end of the transaction.
pub async fn lock_state(conn: &mut PgConnection, admin_id: i64) -> sqlx::Result<Option<TotpState>> {
    sqlx::query_as!(
        TotpState,
        r#"SELECT username, disabled_at, totp_secret AS secret, totp_enabled_at AS enabled_at,
                  totp_last_step AS last_step
           FROM admins WHERE id = $1 FOR UPDATE"#,
        admin_id
    )
    .fetch_optional(conn)
    .await
}

/// Stores a pending secret (replacing an earlier pending one); false when TOTP is already on or there is no
/// such admin.
pub async fn set_pending(db: impl PgExecutor<'_>, admin_id: i64, secret: &str) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE admins SET totp_secret = $2, totp_last_step = NULL
          WHERE id = $1 AND totp_enabled_at IS NULL RETURNING id",
        admin_id,
        secret
    )
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// Turns TOTP on for the pending `secret`, `step` spent; false when that secret is no longer the pending one.
pub async fn enable(db: impl PgExecutor<'_>, admin_id: i64, secret: &str, step: i64) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE admins SET totp_enabled_at = now(), totp_last_step = $3
          WHERE id = $1 AND totp_secret = $2 AND totp_enabled_at IS NULL RETURNING id",
        admin_id,
        secret,
        step
    )
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// Spends `step` for an enabled admin: true only for the first caller with a step later than any spent before
/// (two concurrent uses of one code cannot both pass).
pub async fn spend_step(db: impl PgExecutor<'_>, admin_id: i64, step: i64) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE admins SET totp_last_step = $2
          WHERE id = $1 AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $2)
          RETURNING id",
        admin_id,
        step
    )
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// Forgets the secret (pending or enabled); false when there was none.
pub async fn clear(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE admins SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL
          WHERE id = $1 AND totp_secret IS NOT NULL RETURNING id",
        admin_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// Replaces the admin's recovery codes with these (SHA-256 hex each).
pub async fn replace_recovery_codes(conn: &mut PgConnection, admin_id: i64, hashes: &[String]) -> sqlx::Result<()> {
    delete_recovery_codes(&mut *conn, admin_id).await?;
    sqlx::query!(
        "INSERT INTO admin_recovery_codes (admin_id, code_hash) SELECT $1, h FROM unnest($2::text[]) AS h",
        admin_id,
        hashes
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_recovery_codes(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM admin_recovery_codes WHERE admin_id = $1", admin_id).execute(db).await?;
    Ok(())
}

/// Marks the unused recovery code with this hash used; false when there is none (unknown or spent).
pub async fn spend_recovery_code(db: impl PgExecutor<'_>, admin_id: i64, hash: &str) -> sqlx::Result<bool> {
    let row = sqlx::query_scalar!(
        "UPDATE admin_recovery_codes SET used_at = now()
          WHERE admin_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING id",
        admin_id,
        hash
    )
    .fetch_all(db)
    .await?;
    Ok(!row.is_empty())
}

/// How many of the admin's recovery codes are still unused.
pub async fn unused_recovery_codes(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM admin_recovery_codes WHERE admin_id = $1 AND used_at IS NULL"#,
        admin_id
    )
    .fetch_one(db)
    .await
}
