//! Notices and alerts through Telegram, in each customer's language. A notice becomes one or more
//! `telegram.send` jobs (text, then a QR code per device), each once-only, so a retry never repeats a message.

use sqlx::PgPool;

use super::callback::Cb;
use super::outbox::{self, OutMessage};
use super::ui::html;
use crate::config::Settings;
use crate::i18n::{self, Arg};
use crate::services::access;
use crate::services::notify::{Notice, Notifier, NotifyError, UserNotice};
use crate::services::shop::label;
use crate::services::users;

pub struct TelegramNotifier {
    pub pool: PgPool,
    pub settings: Settings,
}

impl TelegramNotifier {
    async fn messages(&self, n: &UserNotice) -> anyhow::Result<Vec<OutMessage>> {
        let Some(user) = users::find(&self.pool, n.user_id).await? else { return Ok(Vec::new()) };
        let lang = user.language;
        let chat_id = user.telegram_id;
        let view = access::view(&self.pool, n.user_id, n.subscription_id, &self.settings).await?;
        let place = html(&format!("{} {}", view.flag, label(&view.labels, lang, &view.sub.location_code)));
        let b = |key: &str, cb: Cb| (i18n::t(lang, key), cb.to_string());
        let sub = n.subscription_id;
        let text = |key: &str, args: &[(&'static str, Arg)], buttons: Vec<Vec<(String, String)>>| OutMessage::Text {
            chat_id,
            text: i18n::t_args(lang, key, args),
            buttons,
        };
        let renew = vec![b("btn-renew", Cb::Renew(sub))];
        let topup = vec![b("btn-topup", Cb::TopUp(sub)), b("btn-renew", Cb::Renew(sub))];
        let services = vec![b("menu-services", Cb::Service(sub))];
        Ok(match &n.notice {
            Notice::SubscriptionReady => {
                let links = view
                    .links
                    .iter()
                    .map(|l| {
                        i18n::t_args(
                            lang,
                            "device-link",
                            &[("seat", i18n::number(lang, l.seat.into()).into()), ("link", html(&l.link).into())],
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let mut out = vec![text(
                    "notice-ready",
                    &[("place", place.into()), ("url", html(&view.feed_url).into()), ("links", links.into())],
                    vec![services],
                )];
                for l in &view.links {
                    let caption =
                        i18n::t_args(lang, "qr-caption", &[("seat", i18n::number(lang, l.seat.into()).into())]);
                    out.push(OutMessage::Qr { chat_id, link: l.link.clone(), caption });
                }
                out
            }
            Notice::DataCapReached => vec![text("notice-limited", &[("place", place.into())], vec![topup])],
            Notice::SubscriptionExpired => vec![text("notice-expired", &[("place", place.into())], vec![renew])],
            Notice::SubscriptionRevoked => vec![text("notice-revoked", &[("place", place.into())], vec![])],
            Notice::SubscriptionResumed => vec![text("notice-resumed", &[("place", place.into())], vec![services])],
            Notice::ExpiresSoon { days } => vec![text(
                "notice-expires-soon",
                &[
                    ("place", place.into()),
                    ("n", Arg::Count((*days).into())),
                    ("days", i18n::number(lang, (*days).into()).into()),
                ],
                vec![renew],
            )],
            Notice::DataAlmostUsed { percent } => vec![text(
                "notice-data-almost",
                &[("place", place.into()), ("percent", i18n::number(lang, i64::from(*percent)).into())],
                vec![topup],
            )],
        })
    }

    async fn admin_chats(&self) -> Vec<i64> {
        let mut ids = self.settings.telegram.admin_ids.clone();
        if let Ok(more) = users::admin_telegram_ids(&self.pool).await {
            ids.extend(more);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[async_trait::async_trait]
impl Notifier for TelegramNotifier {
    async fn notify_user(&self, notice: &UserNotice, key: &str) -> Result<(), NotifyError> {
        let messages = self.messages(notice).await?;
        if !messages.is_empty() {
            outbox::enqueue(&self.pool, messages, key, &self.settings.jobs).await.map_err(anyhow::Error::from)?;
        }
        Ok(())
    }

    async fn alert_admins(&self, text: &str) -> Result<(), NotifyError> {
        let key = format!("alert:{}", hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8]));
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        for chat_id in self.admin_chats().await {
            let msg = OutMessage::Text { chat_id, text: format!("⚠️ {}", html(text)), buttons: vec![] };
            outbox::enqueue(
                &mut *tx,
                vec![msg],
                &format!("{key}:{chat_id}:{}", chrono::Utc::now().format("%Y%m%d%H")),
                &self.settings.jobs,
            )
            .await
            .map_err(anyhow::Error::from)?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }
}

use sha2::Digest;
