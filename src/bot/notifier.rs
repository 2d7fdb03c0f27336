//! Notices and alerts through Telegram, in each customer's language. A notice becomes one or more
//! `telegram.send` jobs (text, then a QR code per device), each once-only, so a retry never repeats a message.

use sqlx::PgPool;

use super::callback::Cb;
use super::outbox::{self, OutMessage};
use super::ui::html;
use crate::config::Settings;
use crate::i18n::{self, Arg};
use crate::services::notify::{Notice, Notifier, NotifyError, UserNotice};
use crate::services::shop::label;
use crate::services::users;
use crate::services::{access, payments};

pub struct TelegramNotifier {
    pub pool: PgPool,
    pub settings: Settings,
    pub bot: super::TgBot,
    /// For the review locks (posting and closing one payment's review copies never run at once).
    pub locks: crate::db::locks::Locks,
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
                    .map(|l| crate::bot::handlers::services::device_line(lang, l))
                    .collect::<Vec<_>>()
                    .join("\n");
                let mut out = vec![text(
                    "notice-ready",
                    &[("place", place.into()), ("url", html(&view.feed_url).into()), ("links", links.into())],
                    vec![services],
                )];
                for l in &view.links {
                    let caption = crate::bot::handlers::services::qr_caption(lang, l);
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

    /// The customer's message about a decided payment.
    async fn payment_messages(&self, payment_id: i64, event: &str) -> anyhow::Result<Vec<OutMessage>> {
        let v = payments::view(&self.pool, payment_id).await?;
        if event == "accepted" && !v.payment.status.is_settled() {
            // overruled since: the customer hears the outcome that stands
            return Ok(Vec::new());
        }
        let lang = v.customer.language;
        let chat_id = v.customer.telegram_id;
        let order = i18n::number(lang, v.order.id);
        let reason = || super::review::reason_text(lang, v.payment.reason_code.as_deref(), v.payment.reason.as_deref());
        let b = |key: &str, cb: Cb| (i18n::t(lang, key), cb.to_string());
        let place = |sub_id: i64| async move {
            let view = access::view(&self.pool, v.customer.id, sub_id, &self.settings).await?;
            let place = html(&format!("{} {}", view.flag, label(&view.labels, lang, &view.sub.location_code)));
            anyhow::Ok((place, view.sub))
        };
        type Buttons = Vec<Vec<(String, String)>>;
        let (key, args, buttons): (&str, Vec<(&'static str, Arg)>, Buttons) = match event {
            "accepted" => match (v.order.kind.as_str(), v.order.subscription_id) {
                (crate::services::orders::RENEWAL, Some(sub)) => {
                    let (place, sub_row) = place(sub).await?;
                    let until = sub_row.expires_at.map(|t| i18n::moment(lang, t)).unwrap_or_default();
                    let args = vec![("order", order.into()), ("place", place.into()), ("until", until.into())];
                    ("payment-accepted-renewal", args, vec![vec![b("menu-services", Cb::Service(sub))]])
                }
                (crate::services::orders::TOPUP, Some(sub)) => {
                    let (place, _) = place(sub).await?;
                    let added = v.order.granted_bytes.unwrap_or_default();
                    let data = super::handlers::data_text(lang, crate::domain::DataCap::from_db(Some(added))?);
                    let args = vec![("order", order.into()), ("place", place.into()), ("data", data.into())];
                    ("payment-accepted-topup", args, vec![vec![b("menu-services", Cb::Service(sub))]])
                }
                _ => (
                    "payment-accepted-new",
                    vec![("order", order.into())],
                    vec![vec![b("menu-services", Cb::Services)]],
                ),
            },
            "rejected" => {
                let again = match v.order.status {
                    crate::domain::status::OrderStatus::AwaitingPayment => {
                        vec![vec![b("btn-payment-details", Cb::Order(v.order.id))]]
                    }
                    _ => vec![],
                };
                ("payment-rejected", vec![("order", order.into()), ("reason", reason().into())], again)
            }
            "revoked" => {
                let support = html(&self.settings.shop.support_contact);
                let args = vec![("order", order.into()), ("reason", reason().into()), ("support", support.into())];
                ("payment-revoked", args, vec![])
            }
            "refunded" => {
                let support = html(&self.settings.shop.support_contact);
                ("payment-refunded", vec![("order", order.into()), ("support", support.into())], vec![])
            }
            other => anyhow::bail!("unknown payment event {other:?}"),
        };
        Ok(vec![OutMessage::Text { chat_id, text: i18n::t_args(lang, key, &args), buttons }])
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

    async fn notify_payment(&self, payment_id: i64, event: &str) -> Result<(), NotifyError> {
        let messages = self.payment_messages(payment_id, event).await?;
        if messages.is_empty() {
            return Ok(());
        }
        let key = format!("payment:{payment_id}:{event}");
        outbox::enqueue(&self.pool, messages, &key, &self.settings.jobs).await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    async fn post_review(&self, payment_id: i64) -> Result<(), NotifyError> {
        super::review::post(&self.bot, &self.pool, &self.locks, &self.settings, payment_id).await
    }

    async fn close_review(&self, payment_id: i64) -> Result<(), NotifyError> {
        super::review::close(&self.bot, &self.pool, &self.locks, &self.settings, payment_id).await
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
