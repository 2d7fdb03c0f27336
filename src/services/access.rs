//! What a customer connects with: share links per seat, QR codes, and the subscription feed that apps
//! (v2rayN, v2rayNG, Hiddify, Streisand) import and refresh. A link is named after the shop and its location in
//! the customer's language ("vpnshop 🇩🇪 Germany", "vpnshop 🇩🇪 آلمان").

use sqlx::PgPool;

use crate::config::ProvisionSettings;
use crate::db::{self, subscriptions::SubscriptionRow};
use crate::domain::Language;
use crate::domain::inbound;
use crate::domain::status::SubscriptionStatus;
use crate::error::{AppError, AppResult};
use crate::provision::{links, qr};
use crate::services::shop::label;

/// One seat's connection details on one of its node's inbounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatLink {
    pub seat: i32,
    /// Which inbound (e.g. `VLESS WS TLS`) when the node has several; `None` when it has one.
    pub label: Option<String>,
    pub link: String,
}

/// The feed response: body and the headers subscription apps read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// base64 of the links, one per line (empty list when the subscription does not work now).
    pub body: String,
    /// `subscription-userinfo`: upload, download, total (0 = unlimited), expire (unix).
    pub userinfo: String,
    pub update_interval_hours: u32,
    /// `profile-title`: `base64:…`.
    pub title: String,
}

/// Traffic used by a subscription: (upload, download) bytes over all its clients.
pub async fn usage(pool: &PgPool, subscription_id: i64) -> AppResult<(i64, i64)> {
    let rows = db::clients::usage_of(pool, &[subscription_id]).await?;
    Ok(rows.first().map(|(_, up, down)| (*up, *down)).unwrap_or((0, 0)))
}

/// A location as a customer reads it: its flag and its name in `lang` (the code when it is unknown).
pub async fn place(pool: &PgPool, code: &str, lang: Language) -> AppResult<String> {
    Ok(match db::locations::find(pool, code).await? {
        Some(l) => format!("{} {}", l.flag, label(&l.labels, lang, &l.code)),
        None => code.to_owned(),
    })
}

/// Share links of a subscription's live clients, in seat order and, per seat, one per inbound of its node in
/// the node's order (empty until it is placed on a node), named in its owner's language: apps list them as
/// "vpnshop 🇩🇪 Germany #2 · VLESS WS TLS", so a customer can switch when one transport is blocked.
pub async fn links(pool: &PgPool, sub: &SubscriptionRow, shop_name: &str) -> AppResult<Vec<SeatLink>> {
    let Some(server_id) = sub.server_id else { return Ok(Vec::new()) };
    let lang = db::users::find(pool, sub.user_id).await?.map_or(Language::En, |u| u.language);
    let server = db::servers::node(pool, server_id).await?.ok_or(AppError::NotFound("server"))?;
    let inbounds = inbound::from_stored(&server.inbounds, server.protocol, &server.inbound_tag, server.public_port)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("server {}: {e}", server.name)))?;
    let location = db::locations::find(pool, &sub.location_code).await?;
    let place = location.map(|l| format!("{} {}", l.flag, label(&l.labels, lang, &l.code)));
    let clients = db::clients::live_of_subscription(pool, sub.id).await?;
    let many_seats = clients.len() > 1;
    let many_inbounds = inbounds.len() > 1;
    let mut out = Vec::with_capacity(clients.len() * inbounds.len());
    for c in clients {
        let mut seat_name = format!("{shop_name} {}", place.clone().unwrap_or_default()).trim().to_owned();
        if many_seats {
            seat_name.push_str(&format!(" #{}", c.seat));
        }
        for spec in &inbounds {
            let label = many_inbounds.then(|| spec.display_label());
            let name = match &label {
                Some(label) => format!("{seat_name} · {label}"),
                None => seat_name.clone(),
            };
            let link = links::share_link(spec, &server.public_host, c.uuid, &name);
            out.push(SeatLink { seat: c.seat, label, link });
        }
    }
    Ok(out)
}

/// A PNG QR code of a link.
pub fn qr_png(link: &str) -> AppResult<Vec<u8>> {
    qr::qr_png(link).map_err(|e| AppError::Internal(anyhow::anyhow!("QR code: {e}")))
}

/// An inline SVG QR code of a link (for the admin dashboard).
pub fn qr_svg(link: &str) -> AppResult<String> {
    qr::qr_svg(link).map_err(|e| AppError::Internal(anyhow::anyhow!("QR code: {e}")))
}

/// Whether a string can be a feed token at all (so junk never reaches the database).
pub fn plausible_token(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The feed of the subscription with this token. Links are listed only while it works (active), named in its
/// owner's language; the headers always carry usage and expiry so apps show why it stopped.
pub async fn feed(pool: &PgPool, token: &str, settings: &ProvisionSettings) -> AppResult<Feed> {
    if !plausible_token(token) {
        return Err(AppError::NotFound("subscription"));
    }
    let sub = db::subscriptions::find_by_token(pool, token).await?.ok_or(AppError::NotFound("subscription"))?;
    let (up, down) = usage(pool, sub.id).await?;
    let seat_links = if sub.status == SubscriptionStatus::Active {
        links(pool, &sub, &settings.shop_name).await?
    } else {
        Vec::new()
    };
    let lines: Vec<&str> = seat_links.iter().map(|l| l.link.as_str()).collect();
    let total = sub.data_cap_bytes.map(|c| c.max(0) as u64);
    Ok(Feed {
        body: links::feed_body(&lines),
        userinfo: links::subscription_userinfo(
            up.max(0) as u64,
            down.max(0) as u64,
            total,
            sub.expires_at.map(|t| t.timestamp()).unwrap_or(0),
        ),
        update_interval_hours: settings.feed_update_hours,
        title: links::profile_title(&settings.shop_name),
    })
}

/// A customer's subscription as "My services" shows it.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    pub sub: SubscriptionRow,
    pub flag: String,
    pub labels: serde_json::Value,
    pub used_bytes: i64,
    /// Its links (named in the customer's language); they work only while it is active.
    pub links: Vec<SeatLink>,
    /// The feed URL apps import.
    pub feed_url: String,
}

/// The customer's subscriptions, newest first.
pub async fn list_for_user(pool: &PgPool, user_id: i64) -> AppResult<Vec<SubscriptionRow>> {
    Ok(db::subscriptions::for_user(pool, user_id).await?)
}

/// Gives one of the customer's own subscriptions a new feed URL (they think it leaked); the old one answers 404
/// from now on. Not found for someone else's.
pub async fn replace_own_feed_url(pool: &PgPool, user_id: i64, subscription_id: i64) -> AppResult<()> {
    db::subscriptions::find(pool, subscription_id)
        .await?
        .filter(|s| s.user_id == user_id)
        .ok_or(AppError::NotFound("subscription"))?;
    let who = user_id.to_string();
    let actor = crate::services::servers::Actor { kind: "user", id: Some(&who) };
    crate::services::subscriptions::rotate_feed(pool, subscription_id, actor).await?;
    Ok(())
}

/// One of the customer's subscriptions with usage, links and feed URL (not found for someone else's).
pub async fn view(
    pool: &PgPool,
    user_id: i64,
    subscription_id: i64,
    settings: &crate::config::Settings,
) -> AppResult<SubscriptionView> {
    let sub = db::subscriptions::find(pool, subscription_id)
        .await?
        .filter(|s| s.user_id == user_id)
        .ok_or(AppError::NotFound("subscription"))?;
    let location = db::locations::find(pool, &sub.location_code).await?;
    let (flag, labels) = location.map(|l| (l.flag, l.labels)).unwrap_or_default();
    let (up, down) = usage(pool, sub.id).await?;
    let links = links(pool, &sub, &settings.provision.shop_name).await?;
    let feed_url = feed_url(settings, &sub.token);
    Ok(SubscriptionView { sub, flag, labels, used_bytes: up.saturating_add(down), links, feed_url })
}

/// The public URL of a subscription's feed: `{public base URL}/sub/{token}`, keeping any path of the base (a shop
/// behind a reverse proxy under `/vpn`), with or without its trailing slash.
pub fn feed_url(settings: &crate::config::Settings, token: &str) -> String {
    let mut url = settings.public_base_url();
    url.set_query(None);
    url.set_fragment(None);
    if url.cannot_be_a_base() {
        return format!("{url}/sub/{token}");
    }
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(["sub", token]);
    }
    url.to_string()
}
