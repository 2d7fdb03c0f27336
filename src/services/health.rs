//! Readiness: can this instance serve right now?

use std::time::Duration;

use sqlx::PgPool;

use crate::db;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok,
    NotConfigured,
    /// Failed, with a short reason safe to show on an internal endpoint.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub database: Check,
    pub migrations: Check,
    pub redis: Check,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        [&self.database, &self.migrations, &self.redis].iter().all(|c| !matches!(c, Check::Failed(_)))
    }
}

pub async fn readiness(pool: &PgPool, redis: Option<redis::aio::ConnectionManager>, limit: Duration) -> Readiness {
    let database = match tokio::time::timeout(limit, sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool)).await {
        Ok(Ok(_)) => Check::Ok,
        Ok(Err(_)) | Err(_) => Check::Failed("unreachable".into()),
    };
    let migrations = if database != Check::Ok {
        Check::Failed("unknown".into())
    } else {
        // ready when every migration this binary knows is applied as it knows it; migrations of a newer release
        // (applied during a rolling upgrade) do not matter here
        let status = async {
            let mut conn = pool.acquire().await?;
            db::migrations::status(&mut conn).await
        };
        match tokio::time::timeout(limit, status).await {
            Ok(Ok(s)) if s.is_current() => Check::Ok,
            Ok(Ok(s)) if !s.changed.is_empty() => Check::Failed("changed".into()),
            Ok(Ok(s)) if !s.failed.is_empty() => Check::Failed("failed".into()),
            Ok(Ok(_)) | Ok(Err(_)) => Check::Failed("pending".into()),
            Err(_) => Check::Failed("unknown".into()),
        }
    };
    let redis = match redis {
        None => Check::NotConfigured,
        Some(mut conn) => {
            let ping = redis::cmd("PING");
            match tokio::time::timeout(limit, ping.query_async::<String>(&mut conn)).await {
                Ok(Ok(_)) => Check::Ok,
                _ => Check::Failed("unreachable".into()),
            }
        }
    };
    Readiness { database, migrations, redis }
}
