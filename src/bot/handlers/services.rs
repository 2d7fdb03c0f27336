//! My services: the orders awaiting payment, then each subscription with its status, time and data left, and —
//! once it works (active) — its links, QR codes and feed URL.

use chrono::Utc;
use teloxide::prelude::*;
use teloxide::types::{InputFile, ParseMode};

use super::{HandlerError, HandlerResult};
use crate::bot::callback::Cb;
use crate::bot::limits::Kind;
use crate::bot::ui::{Ctx, Screen, button, html};
use crate::domain::status::SubscriptionStatus;
use crate::domain::{DataCap, Language};
use crate::error::AppError;
use crate::i18n::{self, Arg};
use crate::services::access::{self, SeatLink};
use crate::services::shop::label;

/// Whether a subscription's links work now (a pending one is not on its node yet; an ended one is off it).
fn links_work(s: SubscriptionStatus) -> bool {
    s == SubscriptionStatus::Active
}

fn status_key(s: SubscriptionStatus) -> &'static str {
    match s {
        SubscriptionStatus::Pending => "status-pending",
        SubscriptionStatus::Active => "status-active",
        SubscriptionStatus::Limited => "status-limited",
        SubscriptionStatus::Expired => "status-expired",
        SubscriptionStatus::Revoked => "status-revoked",
    }
}

/// `▰▰▰▱▱▱▱▱▱▱ 30%`
pub fn progress_bar(lang: crate::domain::Language, used: i64, cap: i64) -> String {
    let pct = crate::domain::traffic::percent_used(used, Some(cap)).unwrap_or(0).min(100);
    let filled = usize::from(pct).div_ceil(10).min(10);
    format!("{}{} {}%", "▰".repeat(filled), "▱".repeat(10 - filled), i18n::number(lang, i64::from(pct)))
}

pub async fn list(ctx: &Ctx<'_>) -> HandlerResult {
    let subs = access::list_for_user(&ctx.app.pool, ctx.user.id).await?;
    let lang = ctx.lang();
    let home = vec![button(ctx.t("btn-menu"), Cb::Menu)];
    let mut rows = super::pay::awaiting_buttons(ctx).await?;
    if subs.is_empty() && rows.is_empty() {
        let rows = vec![vec![button(ctx.t("menu-buy"), Cb::Buy), button(ctx.t("menu-trial"), Cb::Trial)], home];
        return Ok(ctx.show(Screen::new(ctx.t("services-empty"), rows)).await?);
    }
    for sub in subs.iter().take(20) {
        let name = access::place(&ctx.app.pool, &sub.location_code, lang).await?;
        let trial = if sub.is_trial { format!(" · {}", ctx.t("trial-tag")) } else { String::new() };
        rows.push(vec![button(format!("{name}{trial} · {}", ctx.t(status_key(sub.status))), Cb::Service(sub.id))]);
    }
    rows.push(home);
    ctx.show(Screen::new(ctx.t("services-list"), rows)).await?;
    Ok(())
}

pub async fn show(ctx: &Ctx<'_>, id: i64) -> HandlerResult {
    let lang = ctx.lang();
    let v = access::view(&ctx.app.pool, ctx.user.id, id, &ctx.app.settings).await?;
    let s = &v.sub;
    let time = match (s.status, s.expires_at) {
        (SubscriptionStatus::Pending, _) | (_, None) => ctx.t("time-not-started"),
        (_, Some(end)) => {
            let left = (end - Utc::now()).num_days().max(0);
            ctx.t_args("time-left", &[("n", Arg::Count(left)), ("days", i18n::number(lang, left).into())])
        }
    };
    let data = match DataCap::from_db(s.data_cap_bytes) {
        Ok(DataCap::Limited(cap)) => {
            let left = (cap - v.used_bytes).max(0);
            let usage = ctx.t_args(
                "data-usage",
                &[
                    ("used", i18n::gigabytes(lang, v.used_bytes).into()),
                    ("cap", i18n::gigabytes(lang, cap).into()),
                    ("left", i18n::gigabytes(lang, left).into()),
                ],
            );
            format!("{usage}\n{}", progress_bar(lang, v.used_bytes, cap))
        }
        _ => ctx.t_args("data-usage-unlimited", &[("used", i18n::gigabytes(lang, v.used_bytes).into())]),
    };
    let links_text = match s.status {
        _ if links_work(s.status) && !v.links.is_empty() => {
            v.links.iter().map(|l| device_line(lang, l)).collect::<Vec<_>>().join("\n")
        }
        SubscriptionStatus::Pending | SubscriptionStatus::Active => ctx.t("links-pending"),
        SubscriptionStatus::Limited | SubscriptionStatus::Expired => ctx.t("links-paused"),
        SubscriptionStatus::Revoked => ctx.t("links-ended"),
    };
    let text = ctx.t_args(
        "service-detail",
        &[
            ("place", html(&format!("{} {}", v.flag, label(&v.labels, lang, &s.location_code))).into()),
            ("status", ctx.t(status_key(s.status)).into()),
            ("time", time.into()),
            ("data", data.into()),
            ("url", html(&v.feed_url).into()),
            ("links", links_text.into()),
        ],
    );
    let mut rows = Vec::new();
    if !v.links.is_empty() && links_work(s.status) {
        rows.push(vec![button(ctx.t("btn-qr"), Cb::Qr(s.id))]);
    }
    let mut extend = Vec::new();
    if !s.is_trial
        && matches!(s.status, SubscriptionStatus::Active | SubscriptionStatus::Limited | SubscriptionStatus::Expired)
    {
        extend.push(button(ctx.t("btn-renew"), Cb::Renew(s.id)));
    }
    if !s.is_trial
        && s.data_cap_bytes.is_some()
        && matches!(s.status, SubscriptionStatus::Active | SubscriptionStatus::Limited)
    {
        extend.push(button(ctx.t("btn-topup"), Cb::TopUp(s.id)));
    }
    if !extend.is_empty() {
        rows.push(extend);
    }
    if s.status != SubscriptionStatus::Revoked {
        rows.push(vec![button(ctx.t("btn-new-url"), Cb::NewFeedUrl(s.id))]);
    }
    rows.push(vec![button(ctx.t("btn-back"), Cb::Services), button(ctx.t("btn-menu"), Cb::Menu)]);
    ctx.show(Screen::new(text, rows)).await?;
    Ok(())
}

/// Replaces the subscription URL (the customer thinks it leaked) and shows the details with the new one.
pub async fn new_feed_url(ctx: &Ctx<'_>, id: i64) -> Result<Option<String>, HandlerError> {
    access::replace_own_feed_url(&ctx.app.pool, ctx.user.id, id).await?;
    show(ctx, id).await?;
    Ok(Some(ctx.t("feed-url-replaced")))
}

/// Sends one QR code image per device.
pub async fn qr(ctx: &Ctx<'_>, id: i64) -> Result<Option<String>, HandlerError> {
    let v = access::view(&ctx.app.pool, ctx.user.id, id, &ctx.app.settings).await?;
    if !links_work(v.sub.status) {
        return Err(AppError::conflict("its links do not work now").into());
    }
    for link in &v.links {
        // sent by an earlier attempt of this update
        let Some(step) = ctx.progress.step() else { continue };
        let png = access::qr_png(&link.link)?;
        let caption = qr_caption(ctx.lang(), link);
        let photo = ctx
            .bot
            .api()
            .send_photo(ctx.chat, InputFile::memory(png).file_name(format!("device-{}.png", link.seat)))
            .caption(caption)
            .parse_mode(ParseMode::Html);
        ctx.bot.send(ctx.chat, Kind::Send, photo).await?;
        step.sent().await;
    }
    Ok(None)
}

/// One device's link as the bot lists it: "Device 2: <code>vless://…</code>", with the inbound's name when the
/// node has several ("Device 2 · VLESS WS TLS: …").
pub(crate) fn device_line(lang: Language, l: &SeatLink) -> String {
    let seat = ("seat", i18n::number(lang, l.seat.into()).into());
    let link = ("link", html(&l.link).into());
    match &l.label {
        Some(via) => i18n::t_args(lang, "device-link-via", &[seat, ("via", html(via).into()), link]),
        None => i18n::t_args(lang, "device-link", &[seat, link]),
    }
}

/// The caption of one link's QR code (with the inbound's name when the node has several).
pub(crate) fn qr_caption(lang: Language, l: &SeatLink) -> String {
    let seat = ("seat", i18n::number(lang, l.seat.into()).into());
    match &l.label {
        Some(via) => i18n::t_args(lang, "qr-caption-via", &[seat, ("via", html(via).into())]),
        None => i18n::t_args(lang, "qr-caption", &[seat]),
    }
}
