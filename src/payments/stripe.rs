//! Stripe Checkout over its HTTP API (form-encoded POSTs, Bearer auth; no SDK): a Checkout Session per payment
//! attempt, sent with the attempt's `Idempotency-Key`, so a retried request can never make a second session
//! (Stripe answers a repeat with the first result). Retries are only those that stay safe: a request that timed
//! out, could not connect, or was told to wait (409 `idempotency_key_in_use`, 429) goes again with the same key.
//! A 5xx is not retried — Stripe stores it under the key and would only replay it — and reports the gateway as
//! unavailable; the next attempt is a new payment with a new key. A session is read back as it stands now
//! ([`Stripe::retrieve_session`], for reconciliation when no webhook came). The webhook's side (signatures,
//! events) is in [`webhook`].

pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{Checkout, CheckoutRequest, Gateway, GatewayError};
use crate::config::{Settings, StripeSettings};
use crate::domain::Currency;
use crate::domain::status::PaymentMethod;

/// What Stripe prices in for us (IRR is not a Stripe currency).
pub const CURRENCIES: &[Currency] = &[Currency::Usd, Currency::Eur];

/// The shortest and longest a Checkout Session may stay open: Stripe allows 30 minutes to 24 hours after it
/// creates the session, which is a moment after we ask; a minute of margin on both ends.
const MIN_EXPIRY: Duration = Duration::from_secs(31 * 60);
const MAX_EXPIRY: Duration = Duration::from_secs(24 * 3600 - 60);

/// The Stripe gateway, when `stripe.secret_key` is set.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Gateway>>> {
    if !settings.stripe.enabled() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Stripe::new(&settings.stripe)?)))
}

/// The Checkout Sessions client.
pub struct Stripe {
    http: reqwest::Client,
    sessions_url: Url,
    secret_key: SecretString,
    max_retries: u32,
}

impl Stripe {
    pub fn new(settings: &StripeSettings) -> anyhow::Result<Stripe> {
        let secret_key = settings.secret_key.clone().context("stripe.secret_key is not set")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .timeout(Duration::from_secs(settings.timeout_secs))
            .user_agent(concat!("vpnshop/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the Stripe HTTP client")?;
        let base = settings.api_url.as_str().trim_end_matches('/');
        let sessions_url = Url::parse(&format!("{base}/v1/checkout/sessions")).context("stripe.api_url")?;
        Ok(Stripe { http, sessions_url, secret_key, max_retries: settings.max_retries })
    }

    /// One request: a session, a final error, or a failure that may be retried with the same key.
    async fn post_once(&self, form: &[(String, String)], key: &str) -> Attempt {
        let sent = self
            .http
            .post(self.sessions_url.clone())
            .bearer_auth(self.secret_key.expose_secret())
            .header("Idempotency-Key", key)
            .form(form)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // not answered: Stripe may or may not have made the session; the same key tells which
            Err(e) => return Attempt::Retry(format!("no answer from Stripe: {}", error_chain(&e))),
        };
        let status = response.status();
        let should_retry =
            response.headers().get("stripe-should-retry").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return Attempt::Retry(format!("Stripe's answer broke off: {}", error_chain(&e))),
        };
        if status.is_success() {
            return Attempt::Done(
                serde_json::from_slice::<Session>(&body)
                    .map_err(|e| GatewayError::Unavailable(format!("unreadable Checkout Session from Stripe: {e}"))),
            );
        }
        let error = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.error).unwrap_or_default();
        let what = error.describe(status);
        let retryable = match should_retry.as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS,
        };
        if retryable {
            Attempt::Retry(what)
        } else if status.is_server_error() {
            Attempt::Done(Err(GatewayError::Unavailable(what)))
        } else {
            Attempt::Done(Err(GatewayError::Refused(what)))
        }
    }
}

impl Stripe {
    /// The Checkout Session as it stands now (`GET /v1/checkout/sessions/{id}`, one try): `None` when Stripe does
    /// not know it (404). No answer, a 5xx or 429, or an unreadable body is `Unavailable`; another refusal (a
    /// wrong key, a malformed id) is `Refused`.
    pub async fn retrieve_session(&self, id: &str) -> Result<Option<SessionState>, GatewayError> {
        let mut url = self.sessions_url.clone();
        url.path_segments_mut()
            .map_err(|()| GatewayError::Refused("stripe.api_url cannot take a path".into()))?
            .push(id);
        let response = self
            .http
            .get(url)
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(|e| GatewayError::Unavailable(format!("no answer from Stripe: {}", error_chain(&e))))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| GatewayError::Unavailable(format!("Stripe's answer broke off: {}", error_chain(&e))))?;
        if status.is_success() {
            return serde_json::from_slice::<SessionState>(&body)
                .map(Some)
                .map_err(|e| GatewayError::Unavailable(format!("unreadable Checkout Session {id} from Stripe: {e}")));
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.error).unwrap_or_default().describe(status);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(GatewayError::Unavailable(what))
        } else {
            Err(GatewayError::Refused(what))
        }
    }
}

/// A Checkout Session as Stripe shows it now (the parts reconciliation reads).
#[derive(Debug, Clone, Deserialize)]
pub struct SessionState {
    pub id: String,
    /// `open`, `complete` or `expired`.
    pub status: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    pub payment_status: Option<String>,
    pub amount_total: Option<i64>,
    /// Lowercase ISO code.
    pub currency: Option<String>,
    /// The PaymentIntent's id (or the object, when expanded).
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
}

/// An id Stripe may send as a string or, expanded, as an object with an `id`.
fn id_or_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(id)) => Some(id),
        Some(serde_json::Value::Object(o)) => o.get("id").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    })
}

enum Attempt {
    Done(Result<Session, GatewayError>),
    Retry(String),
}

#[async_trait::async_trait]
impl Gateway for Stripe {
    fn method(&self) -> PaymentMethod {
        PaymentMethod::Stripe
    }

    fn currencies(&self) -> &'static [Currency] {
        CURRENCIES
    }

    async fn checkout(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError> {
        let form = session_form(request, Utc::now())?;
        let mut attempt = 0;
        let session = loop {
            match self.post_once(&form, &request.idempotency_key).await {
                Attempt::Done(result) => break result?,
                Attempt::Retry(why) if attempt < self.max_retries => {
                    attempt += 1;
                    tracing::info!(payment.id = request.payment_id, attempt, reason = %why, "Stripe request sent again");
                    tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
                }
                Attempt::Retry(why) => return Err(GatewayError::Unavailable(why)),
            }
        };
        let wanted = (request.amount.minor(), request.amount.currency().as_str().to_ascii_lowercase());
        if (session.amount_total, session.currency.as_deref()) != (Some(wanted.0), Some(wanted.1.as_str())) {
            return Err(GatewayError::Refused(format!(
                "Stripe made session {} for {:?} {:?}, not {} {}",
                session.id, session.amount_total, session.currency, wanted.0, wanted.1
            )));
        }
        let url = session.url.filter(|u| Url::parse(u).is_ok()).ok_or_else(|| {
            GatewayError::Unavailable(format!("Stripe's session {} came without a payment page", session.id))
        })?;
        Ok(Checkout { processor_id: session.id, url })
    }
}

/// The Checkout Session's parameters, form-encoded as Stripe reads them (`line_items[0][price_data][…]`).
pub fn session_form(request: &CheckoutRequest, now: DateTime<Utc>) -> Result<Vec<(String, String)>, GatewayError> {
    let currency = request.amount.currency();
    if !CURRENCIES.contains(&currency) {
        return Err(GatewayError::Refused(format!("Stripe does not take {currency} here")));
    }
    if request.idempotency_key.is_empty() || request.idempotency_key.len() > 255 {
        return Err(GatewayError::Refused("an Idempotency-Key must be 1 to 255 characters".into()));
    }
    let open_for = request.expires_in.clamp(MIN_EXPIRY, MAX_EXPIRY);
    let expires_at = now.timestamp() + i64::try_from(open_for.as_secs()).unwrap_or(i64::MAX / 2);
    let name: String = request.description.chars().take(200).collect();
    let (order, payment) = (request.order_id.to_string(), request.payment_id.to_string());
    let pairs = [
        ("mode", "payment".to_owned()),
        ("line_items[0][price_data][currency]", currency.as_str().to_ascii_lowercase()),
        ("line_items[0][price_data][unit_amount]", request.amount.minor().to_string()),
        ("line_items[0][price_data][product_data][name]", name),
        ("line_items[0][quantity]", "1".to_owned()),
        ("success_url", request.success_url.clone()),
        ("cancel_url", request.cancel_url.clone()),
        ("client_reference_id", order.clone()),
        ("metadata[order_id]", order.clone()),
        ("metadata[payment_id]", payment.clone()),
        ("metadata[payment_ref]", request.reference.clone()),
        ("payment_intent_data[metadata][order_id]", order),
        ("payment_intent_data[metadata][payment_id]", payment),
        ("payment_intent_data[metadata][payment_ref]", request.reference.clone()),
        ("expires_at", expires_at.to_string()),
    ];
    Ok(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The parts of a created Checkout Session we use.
#[derive(Debug, Deserialize)]
struct Session {
    id: String,
    url: Option<String>,
    amount_total: Option<i64>,
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ApiError,
}

/// Stripe's error object (`{"error": {"type", "code", "message", "param"}}`).
#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

impl ApiError {
    fn describe(&self, status: StatusCode) -> String {
        let code = self.code.as_deref().or(self.kind.as_deref()).unwrap_or("error");
        let param = self.param.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        let message = self.message.as_deref().unwrap_or("no message");
        format!("Stripe answered {}: {code}{param}: {message}", status.as_u16())
    }
}

/// An HTTP client error with its causes (reqwest's own text says little: "error sending request").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_owned() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    fn request(currency: Currency, expires_in: Duration) -> CheckoutRequest {
        CheckoutRequest {
            payment_id: 7,
            order_id: 42,
            amount: Money::from_minor(299, currency).unwrap(),
            description: "vpnshop order #42".into(),
            idempotency_key: "vpnshop-payment-7".into(),
            reference: "0b7f4c2e-0000-4000-8000-000000000007".into(),
            success_url: "https://t.me/shop_bot?start=paid_42".into(),
            cancel_url: "https://t.me/shop_bot?start=paid_42".into(),
            callback_url: String::new(),
            expires_in,
        }
    }

    #[test]
    fn the_session_carries_the_order_in_minor_units_and_lowercase_currency() {
        let now = Utc::now();
        let form = session_form(&request(Currency::Eur, Duration::from_secs(3600)), now).unwrap();
        let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(get("line_items[0][price_data][unit_amount]"), "299");
        assert_eq!(get("line_items[0][price_data][currency]"), "eur");
        assert_eq!(get("client_reference_id"), "42");
        assert_eq!((get("metadata[order_id]"), get("metadata[payment_id]")), ("42", "7"));
        assert_eq!(get("payment_intent_data[metadata][payment_id]"), "7");
        assert_eq!(get("expires_at"), (now.timestamp() + 3600).to_string());
    }

    #[test]
    fn the_expiry_stays_within_what_stripe_allows() {
        let now = Utc::now();
        for (asked, open) in [(60, 31 * 60), (30 * 60, 31 * 60), (7 * 24 * 3600, 24 * 3600 - 60)] {
            let form = session_form(&request(Currency::Usd, Duration::from_secs(asked)), now).unwrap();
            let at = form.iter().find(|(k, _)| k == "expires_at").unwrap().1.parse::<i64>().unwrap();
            assert_eq!(at - now.timestamp(), open, "asked for {asked} s");
        }
    }

    #[test]
    fn rials_are_not_sent_to_stripe() {
        let err = session_form(&request(Currency::Irr, Duration::from_secs(3600)), Utc::now()).unwrap_err();
        assert!(matches!(err, GatewayError::Refused(_)), "{err:?}");
    }
}
