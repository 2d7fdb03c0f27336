//! Broadcasts: one message (per language) to many customers. Creating one fixes its recipients in the same
//! transaction (the audience as it is then) and enqueues its sender, a durable job (`sender`); operators follow its
//! progress and pause, resume or cancel it (`running ⇄ paused → cancelled`; `running → done`).

pub mod html;
pub mod sender;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::config::JobSettings;
use crate::db;
use crate::db::broadcasts::{BroadcastRow, RecipientStatus};
use crate::domain::Language;
use crate::domain::page::{Cursor, PageRequest};
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;
use crate::services::queue::JobSpec;

pub use crate::db::broadcasts::{Audience, BroadcastStatus};
pub use sender::{Delivery, SEND_KIND, Sender};

/// The longest text of one language, as Telegram allows in one message.
pub const MAX_TEXT: usize = 4096;
/// The longest look back of an `expired` audience.
pub const MAX_DAYS: i64 = 3650;

/// A broadcast as asked for (already read from JSON; checked by [`Draft::parse`]).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub texts: BTreeMap<String, String>,
    pub fallback: Option<String>,
    pub audience_kind: String,
    pub days: Option<i64>,
    pub location: Option<String>,
}

/// A checked broadcast request.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub texts: BTreeMap<Language, String>,
    pub fallback: Language,
    pub audience: Audience,
}

impl Draft {
    /// Checks every field; the error names the first one that is wrong (`texts.fa`, `audience.days`, …).
    pub fn parse(req: &Request) -> AppResult<Draft> {
        if req.texts.is_empty() {
            return Err(AppError::field("texts", "give the message in at least one language (en, fa, ru)"));
        }
        let mut texts = BTreeMap::new();
        for (lang, text) in &req.texts {
            let field = format!("texts.{lang}");
            let language: Language =
                lang.parse().map_err(|_| AppError::field(&field, "not a language of the shop (en, fa, ru)"))?;
            // as Telegram counts: UTF-16 units (an emoji may be two); tags and entities count too, so what
            // customers see is never longer
            let len = text.encode_utf16().count();
            if text.trim().is_empty() || len > MAX_TEXT {
                return Err(AppError::field(field, format!("1 to {MAX_TEXT} characters (this one has {len})")));
            }
            html::check(text).map_err(|e| AppError::field(&field, format!("not Telegram HTML: {e}")))?;
            texts.insert(language, text.clone());
        }
        let fallback = match &req.fallback {
            Some(f) => f.parse().map_err(|_| AppError::field("fallback", "not a language of the shop (en, fa, ru)"))?,
            None if texts.contains_key(&Language::En) => Language::En,
            None => *texts.keys().next().expect("texts is not empty"),
        };
        if !texts.contains_key(&fallback) {
            return Err(AppError::field("fallback", "must be one of the languages in `texts`"));
        }
        let unused = |name: &str, present: bool| {
            if present {
                Err(AppError::field(format!("audience.{name}"), "not used by this audience kind"))
            } else {
                Ok(())
            }
        };
        let audience = match req.audience_kind.as_str() {
            "all" | "active" | "never_bought" => {
                unused("days", req.days.is_some())?;
                unused("location", req.location.is_some())?;
                match req.audience_kind.as_str() {
                    "all" => Audience::All,
                    "active" => Audience::Active,
                    _ => Audience::NeverBought,
                }
            }
            "expired" => {
                unused("location", req.location.is_some())?;
                let days = req.days.ok_or_else(|| AppError::field("audience.days", "required for `expired`"))?;
                if !(1..=MAX_DAYS).contains(&days) {
                    return Err(AppError::field("audience.days", format!("between 1 and {MAX_DAYS}")));
                }
                Audience::Expired { days: days as i32 }
            }
            "location" => {
                unused("days", req.days.is_some())?;
                let location = req.location.clone().filter(|l| !l.is_empty());
                let location =
                    location.ok_or_else(|| AppError::field("audience.location", "required for `location`"))?;
                Audience::Location { location }
            }
            _ => {
                return Err(AppError::field("audience.kind", "one of all, active, expired, never_bought, location"));
            }
        };
        Ok(Draft { texts, fallback, audience })
    }
}

/// A broadcast with its recipients counted by status.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    pub row: BroadcastRow,
    pub progress: Progress,
}

/// How far a broadcast got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Recipients when it was created.
    pub total: i64,
    pub sent: i64,
    /// Telegram refused the message (after retries).
    pub failed: i64,
    /// The customer blocked the bot (or deleted their account).
    pub blocked: i64,
    /// Its sender stopped mid-send: maybe delivered, never sent again.
    pub unknown: i64,
    /// Not sent because the broadcast was cancelled.
    pub skipped: i64,
    /// Still to send (waiting or being sent now).
    pub left: i64,
}

impl Progress {
    fn add(&mut self, status: RecipientStatus, n: i64) {
        match status {
            RecipientStatus::Pending | RecipientStatus::Sending => self.left += n,
            RecipientStatus::Sent => self.sent += n,
            RecipientStatus::Failed => self.failed += n,
            RecipientStatus::Blocked => self.blocked += n,
            RecipientStatus::Unknown => self.unknown += n,
            RecipientStatus::Skipped => self.skipped += n,
        }
    }
}

/// How many customers the draft's audience holds now (a dry run: nothing is written).
pub async fn count(pool: &PgPool, draft: &Draft) -> AppResult<i64> {
    check_location(pool, &draft.audience).await?;
    Ok(db::broadcasts::count_audience(pool, &draft.audience).await?)
}

async fn check_location(pool: &PgPool, audience: &Audience) -> AppResult<()> {
    if let Audience::Location { location } = audience
        && db::locations::find(pool, location).await?.is_none()
    {
        return Err(AppError::field("audience.location", "no such location"));
    }
    Ok(())
}

/// Creates the broadcast, its recipients and its sender job in one transaction, recorded in the audit log.
pub async fn create(pool: &PgPool, jobs: &JobSettings, draft: &Draft, who: &Who) -> AppResult<Broadcast> {
    check_location(pool, &draft.audience).await?;
    let texts: BTreeMap<&str, &String> = draft.texts.iter().map(|(l, t)| (l.as_str(), t)).collect();
    let texts = serde_json::to_value(texts).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let new = db::broadcasts::NewBroadcast {
        texts: &texts,
        fallback: draft.fallback.as_str(),
        audience: &draft.audience,
        created_by_kind: who.kind,
        created_by_id: who.id.as_deref(),
    };
    let row = db::broadcasts::create(&mut tx, &new).await?;
    let detail = serde_json::json!({"audience": row.audience, "total": row.total, "languages": texts.as_object()
        .map(|t| t.keys().cloned().collect::<Vec<_>>())});
    who.record(&mut tx, "broadcast.create", "broadcast", row.id, detail).await?;
    enqueue(&mut *tx, row.id, jobs).await?;
    tx.commit().await?;
    tracing::info!(broadcast.id = row.id, broadcast.total = row.total, "broadcast created");
    let progress = Progress { total: i64::from(row.total), left: i64::from(row.total), ..Progress::default() };
    Ok(Broadcast { row, progress })
}

/// The `broadcasts` sweep: a running broadcast whose sender job is gone (it died after its last attempt, or was
/// cleaned up) gets a new one, so a broadcast never stalls with nobody sending it. Returns how many.
pub async fn revive(pool: &PgPool, jobs: &JobSettings) -> AppResult<u64> {
    let stalled: Vec<i64> = sqlx::query_scalar!(
        r#"SELECT b.id FROM broadcasts b
           WHERE b.status = 'running'
             AND NOT EXISTS (SELECT 1 FROM jobs j
                              WHERE j.coalesce_key = 'broadcast:' || b.id AND j.status IN ('queued', 'running'))"#
    )
    .fetch_all(pool)
    .await?;
    for id in &stalled {
        tracing::warn!(broadcast.id = id, "a running broadcast had no sender: queued again");
        enqueue(pool, *id, jobs).await?;
    }
    Ok(stalled.len() as u64)
}

/// Queues the broadcast's sender (at most one waiting at a time).
async fn enqueue(db: impl sqlx::PgExecutor<'_>, id: i64, jobs: &JobSettings) -> sqlx::Result<()> {
    let payload = serde_json::json!({ "broadcast_id": id });
    JobSpec::new(SEND_KIND, payload).coalesce(format!("broadcast:{id}")).enqueue(db, jobs).await?;
    Ok(())
}

async fn with_progress(pool: &PgPool, rows: Vec<BroadcastRow>) -> AppResult<Vec<Broadcast>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let counts = db::broadcasts::counts(pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut progress = Progress { total: i64::from(row.total), ..Progress::default() };
            for (_, status, n) in counts.iter().filter(|(id, ..)| *id == row.id) {
                progress.add(*status, *n);
            }
            Broadcast { row, progress }
        })
        .collect())
}

pub async fn get(pool: &PgPool, id: i64) -> AppResult<Broadcast> {
    let row = db::broadcasts::find(pool, id).await?.ok_or(AppError::NotFound("broadcast"))?;
    Ok(with_progress(pool, vec![row]).await?.pop().expect("one row in, one out"))
}

/// A page of broadcasts, newest first unless asked otherwise.
pub async fn list(
    pool: &PgPool,
    status: Option<BroadcastStatus>,
    page: &PageRequest,
) -> AppResult<(Vec<Broadcast>, Option<Cursor>)> {
    let rows = db::broadcasts::page(pool, status, page).await?;
    let (rows, next) = page.cut(rows, |r| Cursor::at(r.created_at, r.id));
    Ok((with_progress(pool, rows).await?, next))
}

/// An operator's change of a broadcast's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Cancel => "cancel",
        }
    }

    /// The state it leads to from `from`, if it may be taken there.
    fn target(self, from: BroadcastStatus) -> Option<BroadcastStatus> {
        use BroadcastStatus::*;
        match (self, from) {
            (Action::Pause, Running) => Some(Paused),
            (Action::Resume, Paused) => Some(Running),
            (Action::Cancel, Running | Paused) => Some(Cancelled),
            _ => None,
        }
    }
}

/// Pauses (sending stops after the messages under way), resumes or cancels (recipients not yet sent are
/// skipped for good) a broadcast; 409 when its state does not allow it. Audited.
pub async fn act(pool: &PgPool, jobs: &JobSettings, id: i64, action: Action, who: &Who) -> AppResult<Broadcast> {
    let mut tx = pool.begin().await?;
    let row = db::broadcasts::lock(&mut tx, id).await?.ok_or(AppError::NotFound("broadcast"))?;
    let Some(to) = action.target(row.status) else {
        return Err(AppError::conflict(format!("a {} broadcast cannot be {}d", row.status, action.name())));
    };
    db::broadcasts::transition(&mut *tx, id, row.status, to).await?;
    let skipped = match action {
        Action::Cancel => db::broadcasts::skip_pending(&mut *tx, id).await?,
        Action::Resume => {
            enqueue(&mut *tx, id, jobs).await?;
            0
        }
        Action::Pause => 0,
    };
    let detail = serde_json::json!({"from": row.status, "to": to, "skipped": skipped});
    who.record(&mut tx, &format!("broadcast.{}", action.name()), "broadcast", id, detail).await?;
    tx.commit().await?;
    get(pool, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(texts: &[(&str, &str)], kind: &str) -> Request {
        Request {
            texts: texts.iter().map(|(l, t)| (l.to_string(), t.to_string())).collect(),
            audience_kind: kind.into(),
            ..Request::default()
        }
    }

    fn field(r: &Request) -> String {
        match Draft::parse(r) {
            Err(AppError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        assert_eq!(field(&req(&[], "all")), "texts");
        assert_eq!(field(&req(&[("de", "hallo")], "all")), "texts.de");
        assert_eq!(field(&req(&[("en", "   ")], "all")), "texts.en");
        assert_eq!(field(&req(&[("fa", &"x".repeat(4097))], "all")), "texts.fa");
        assert_eq!(field(&req(&[("en", "1 < 2")], "all")), "texts.en");
        assert_eq!(field(&req(&[("en", "hi")], "everyone")), "audience.kind");
        assert_eq!(field(&Request { days: Some(-1), ..req(&[("en", "hi")], "expired") }), "audience.days");
        assert_eq!(field(&req(&[("en", "hi")], "expired")), "audience.days");
        assert_eq!(field(&Request { days: Some(3), ..req(&[("en", "hi")], "all") }), "audience.days");
        assert_eq!(field(&req(&[("en", "hi")], "location")), "audience.location");
        assert_eq!(field(&Request { fallback: Some("ru".into()), ..req(&[("en", "hi")], "all") }), "fallback");
        let ok =
            Draft::parse(&Request { days: Some(30), ..req(&[("fa", "سلام"), ("ru", "привет")], "expired") });
        let ok = ok.unwrap();
        assert_eq!(ok.fallback, Language::Fa, "the first language given when en is not among them");
        assert_eq!(ok.audience, Audience::Expired { days: 30 });
        assert!(Draft::parse(&req(&[("en", &"é".repeat(4096))], "all")).is_ok(), "characters, not bytes");
    }

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        use BroadcastStatus::*;
        assert_eq!(Action::Pause.target(Running), Some(Paused));
        assert_eq!(Action::Resume.target(Paused), Some(Running));
        assert_eq!(Action::Cancel.target(Paused), Some(Cancelled));
        assert_eq!(Action::Cancel.target(Running), Some(Cancelled));
        for from in [Paused, Cancelled, Done] {
            assert_eq!(Action::Pause.target(from), None);
        }
        for from in [Running, Cancelled, Done] {
            assert_eq!(Action::Resume.target(from), None);
        }
        for from in [Cancelled, Done] {
            assert_eq!(Action::Cancel.target(from), None);
        }
    }
}
