//! The migration lock: sqlx's own advisory lock key (so releases that let sqlx take it and this one exclude each
//! other), taken by polling `pg_try_advisory_lock` instead of waiting in `pg_advisory_lock`. A session waiting
//! in `pg_advisory_lock` holds a snapshot, and `CREATE INDEX CONCURRENTLY` waits for every older snapshot to go:
//! with a second instance waiting for the lock that way, the index build and the waiter deadlock (PostgreSQL
//! aborts one). Polling holds no snapshot between tries.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgConnection;

const POLL: Duration = Duration::from_millis(250);

/// The migration lock's key for a database: sqlx-postgres' `generate_lock_id`, the CRC-32 (ISO-HDLC) of the
/// database name times 0x3d32ad9e.
pub fn key(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32(database.as_bytes()))
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Takes the migration lock of the connection's database, waiting for another instance that holds it.
pub(super) async fn acquire(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let database: String =
        sqlx::query_scalar("SELECT current_database()").fetch_one(&mut *conn).await.context("naming the database")?;
    let key = key(&database);
    let mut waiting = false;
    loop {
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .context("taking the migration lock")?;
        if taken {
            return Ok(key);
        }
        if !waiting {
            tracing::info!("another instance is applying migrations: waiting for it");
            waiting = true;
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(super) async fn release(conn: &mut PgConnection, key: i64) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *conn)
        .await
        .context("releasing the migration lock")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lock_key_is_sqlx_s() {
        // the CRC-32 check value, and zlib's CRC-32 of "postgres" (tests/it/upgrade.rs checks the key against
        // sqlx's lock itself)
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::key("postgres"), 0x3d32_ad9e * i64::from(0x156A_8775_u32));
    }
}
