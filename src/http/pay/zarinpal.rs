//! `GET /pay/zarinpal/callback?Authority=…&Status=OK|NOK`: where Zarinpal sends the customer back. The payment
//! is found by its authority and settled through `services::payments::zarinpal::callback` (which verifies with our
//! amount; `Status` alone proves nothing); the customer gets a page in their language saying what happened, with a
//! link back to the bot. Junk (no or a malformed authority or status) gets a 400 page without touching the
//! database or Zarinpal; an authority that is not ours a 404 page. Safe to repeat, and from several instances at
//! once: the payment is settled under its row lock.
//!
//! `GET /pay/return/{order}`: where a customer lands after paying when the bot's username is not configured.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::config::Settings;
use crate::domain::Language;
use crate::http::Problem;
use crate::http::limits::PublicDb;
use crate::i18n::{self, Arg};
use crate::payments::zarinpal::valid_authority;
use crate::services::broadcasts::html::escape;
use crate::services::payments::online;
use crate::services::payments::zarinpal::{self, Outcome};

pub fn router() -> Router<AppState> {
    Router::new().route("/pay/zarinpal/callback", get(callback)).route("/pay/return/{order}", get(came_back))
}

/// The longest query string read (Zarinpal's is about 60 characters).
const MAX_QUERY: usize = 1024;

async fn callback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    db: Result<PublicDb, Problem>,
) -> Response {
    let settings = &state.settings;
    let lang = browser_language(&headers, settings.shop.default_language);
    let Some((authority, ok)) = parse_callback(query.as_deref().unwrap_or_default()) else {
        return Page::new(lang, "paypage-bad-request").status(StatusCode::BAD_REQUEST).render(settings, None);
    };
    let Some(client) = zarinpal::client(&state.gateways) else {
        return Page::new(lang, "paypage-unknown").status(StatusCode::NOT_FOUND).render(settings, None);
    };
    let Ok(_db) = db else {
        return Page::new(lang, "paypage-busy").status(StatusCode::SERVICE_UNAVAILABLE).render(settings, None);
    };
    match zarinpal::callback(&state.pool, settings, &client, &authority, ok).await {
        Ok(Some(returned)) => {
            let key = match returned.outcome {
                Outcome::Paid => "zarinpal-paid",
                Outcome::Cancelled => "zarinpal-cancelled",
                Outcome::NotPaid => "zarinpal-not-paid",
                Outcome::Invalid => "zarinpal-invalid",
                Outcome::AmountMismatch => "zarinpal-mismatch",
                Outcome::Held => "zarinpal-held",
                Outcome::AlreadyPaid => "zarinpal-already-paid",
                Outcome::Pending => "zarinpal-pending",
            };
            Page::new(returned.language, key).order(returned.order_id).render(settings, Some(returned.order_id))
        }
        Ok(None) => Page::new(lang, "paypage-unknown").status(StatusCode::NOT_FOUND).render(settings, None),
        Err(e) => {
            if e.is_internal() {
                tracing::error!(error = format!("{e:#}"), "Zarinpal callback failed");
            } else {
                tracing::warn!(error = %e, "Zarinpal callback refused");
            }
            Page::new(lang, "paypage-busy").status(StatusCode::SERVICE_UNAVAILABLE).render(settings, None)
        }
    }
}

async fn came_back(State(state): State<AppState>, Path(order): Path<String>, headers: HeaderMap) -> Response {
    let settings = &state.settings;
    let lang = browser_language(&headers, settings.shop.default_language);
    match order.parse::<i64>() {
        Ok(order) if order > 0 => Page::new(lang, "paypage-return").order(order).render(settings, Some(order)),
        _ => Page::new(lang, "paypage-bad-request").status(StatusCode::BAD_REQUEST).render(settings, None),
    }
}

/// `Authority` and whether `Status` is `OK`, when both are there once and well-formed.
fn parse_callback(query: &str) -> Option<(String, bool)> {
    if query.len() > MAX_QUERY {
        return None;
    }
    let (mut authority, mut status) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "Authority" | "authority" => &mut authority,
            "Status" | "status" => &mut status,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            // the same parameter twice: which one would Zarinpal have meant?
            return None;
        }
    }
    let authority = authority.filter(|a| valid_authority(a))?;
    let ok = match status?.to_ascii_uppercase().as_str() {
        "OK" => true,
        "NOK" => false,
        _ => return None,
    };
    Some((authority, ok))
}

/// The first language of the browser's `Accept-Language` that we speak, else `fallback`.
fn browser_language(headers: &HeaderMap, fallback: Language) -> Language {
    let accepted = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accepted
        .split(',')
        .filter_map(|item| item.split(';').next())
        .filter_map(|tag| tag.trim().split(['-', '_']).next()?.to_ascii_lowercase().parse::<Language>().ok())
        .next()
        .unwrap_or(fallback)
}

/// A page for the customer: one message, and the way back to the bot.
struct Page {
    lang: Language,
    key: &'static str,
    status: StatusCode,
    order: Option<i64>,
}

impl Page {
    fn new(lang: Language, key: &'static str) -> Page {
        Page { lang, key, status: StatusCode::OK, order: None }
    }

    fn status(self, status: StatusCode) -> Page {
        Page { status, ..self }
    }

    fn order(self, order: i64) -> Page {
        Page { order: Some(order), ..self }
    }

    /// The page; its link goes to the bot (with `/start paid_<order>` for `back_to`) when its username is set.
    fn render(self, settings: &Settings, back_to: Option<i64>) -> Response {
        let lang = self.lang;
        let mut args: Vec<(&'static str, Arg)> = vec![("support", escape(&settings.shop.support_contact).into())];
        if let Some(order) = self.order {
            args.push(("order", i18n::number(lang, order).into()));
        }
        // the messages' own markup is ours (<b>); everything put into them is escaped
        let message = i18n::t_args(lang, self.key, &args);
        let back = match bot(settings) {
            Some(bot) => {
                let url = back_to.map_or_else(|| format!("https://t.me/{bot}"), |o| online::return_url(settings, o));
                format!(r#"<a class="back" href="{}">{}</a>"#, escape(&url), escape(&i18n::t(lang, "paypage-back")))
            }
            None => format!("<p>{}</p>", escape(&i18n::t(lang, "paypage-telegram"))),
        };
        let title = format!("{} · {}", i18n::t(lang, "paypage-title"), settings.provision.shop_name);
        let html = format!(
            r#"<!doctype html>
<html lang="{code}" dir="{dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: Vazirmatn, Tahoma, system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }}
main {{ max-width: 32rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 12px;
       box-shadow: 0 2px 12px rgba(0,0,0,.08); line-height: 1.7; }}
.back {{ display: inline-block; margin-top: 1rem; padding: .7rem 1.4rem; background: #2a7de1; color: #fff;
        border-radius: 8px; text-decoration: none; }}
</style>
</head>
<body>
<main>
<p class="message">{message}</p>
{back}
</main>
</body>
</html>
"#,
            code = lang.as_str(),
            dir = if lang.is_rtl() { "rtl" } else { "ltr" },
            title = escape(&title),
        );
        let mut response = (self.status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // the address holds the payment's authority: not for other sites
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
        );
        response
    }
}

/// The bot's username, when configured.
fn bot(settings: &Settings) -> Option<&str> {
    settings.telegram.bot_username.as_deref().filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_parse_only_when_well_formed() {
        assert_eq!(
            parse_callback("Authority=A0000000000000000000000000012345&Status=OK"),
            Some(("A0000000000000000000000000012345".into(), true))
        );
        assert_eq!(parse_callback("Status=NOK&Authority=S12"), Some(("S12".into(), false)));
        for junk in [
            "",
            "Status=OK",
            "Authority=A1",
            "Authority=A1&Status=maybe",
            "Authority=%3Cscript%3E&Status=OK",
            "Authority=A1&Authority=A2&Status=OK",
            "Authority=A1&Status=OK&Status=NOK",
            "Authority=&Status=OK",
            "%ZZ%%&&==",
        ] {
            assert_eq!(parse_callback(junk), None, "{junk}");
        }
        assert_eq!(parse_callback(&format!("Authority=A1&Status=OK&x={}", "y".repeat(MAX_QUERY))), None);
    }

    #[test]
    fn the_browser_language_is_used_when_we_speak_it() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(v).unwrap());
            browser_language(&h, Language::En)
        };
        assert_eq!(with("fa-IR,fa;q=0.9,en;q=0.8"), Language::Fa);
        assert_eq!(with("de-DE, ru;q=0.5"), Language::Ru);
        assert_eq!(with("de"), Language::En);
        assert_eq!(browser_language(&HeaderMap::new(), Language::Fa), Language::Fa);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
