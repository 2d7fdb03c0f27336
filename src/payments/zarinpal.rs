//! Zarinpal (REST v4): `request.json` gives a payment its authority and the customer goes to
//! `{startpay}/pg/StartPay/{authority}`; `verify.json`, always with the amount from our database, says whether it
//! was paid (100 verified now, 101 verified before: both paid); `unVerified.json` lists payments paid but never
//! verified. Answers are read whatever their HTTP status: `data` and `errors` are each an object or an empty
//! array, and codes and amounts an integer or a digit string. Amounts go out in Rial integers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use url::Url;

use super::{Checkout, CheckoutRequest, Gateway, GatewayError};
use crate::config::{Settings, ZarinpalSettings};
use crate::domain::Currency;
use crate::domain::status::PaymentMethod;

/// Verified now.
pub const VERIFIED: i64 = 100;
/// Verified before (a repeated verify): paid all the same.
pub const ALREADY_VERIFIED: i64 = 101;
/// Too many attempts: try again later.
pub const TOO_MANY_ATTEMPTS: i64 = -12;
/// The amount is not the payment's.
pub const AMOUNT_MISMATCH: i64 = -50;
/// Not paid, or cancelled by the payer.
pub const NOT_PAID: i64 = -51;
/// No such authority.
pub const INVALID_AUTHORITY: i64 = -54;
/// Zarinpal's smallest payment, in Rial.
pub const MIN_AMOUNT_RIAL: i64 = 10_000;

/// What went wrong talking to Zarinpal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZarinpalError {
    /// Not reached, timed out, or a 5xx without an answer we can read: try again later.
    #[error("Zarinpal is unavailable: {0}")]
    Unavailable(String),
    /// Zarinpal answered with this code (see the constants).
    #[error("Zarinpal answered {code}: {message}")]
    Code { code: i64, message: String },
}

impl From<ZarinpalError> for GatewayError {
    fn from(e: ZarinpalError) -> GatewayError {
        match e {
            ZarinpalError::Code { code: TOO_MANY_ATTEMPTS, .. } | ZarinpalError::Unavailable(_) => {
                GatewayError::Unavailable(e.to_string())
            }
            ZarinpalError::Code { .. } => GatewayError::Refused(e.to_string()),
        }
    }
}

/// A verified payment: what Zarinpal tells us about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Answered 101: it had been verified before.
    pub already: bool,
    pub ref_id: Option<String>,
    pub card_pan: Option<String>,
    pub card_hash: Option<String>,
}

/// A payment Zarinpal holds as paid but not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub authority: String,
    /// As Zarinpal has it (never used to verify: that takes our amount).
    pub amount: Option<i64>,
}

/// Whether `s` can be a Zarinpal authority (what we accept from callbacks and from Zarinpal itself).
pub fn valid_authority(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The Zarinpal client.
pub struct Zarinpal {
    http: reqwest::Client,
    api: Url,
    startpay: Url,
    merchant_id: SecretString,
    retries: u32,
}

/// The Zarinpal gateway, when `zarinpal.merchant_id` is set.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Gateway>>> {
    Ok(Zarinpal::new(&settings.zarinpal)?.map(|z| Arc::new(z) as Arc<dyn Gateway>))
}

impl Zarinpal {
    pub fn new(settings: &ZarinpalSettings) -> anyhow::Result<Option<Zarinpal>> {
        let Some(merchant_id) = settings.merchant_id.clone().filter(|m| !m.expose_secret().trim().is_empty()) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .timeout(Duration::from_secs(settings.timeout_secs))
            .user_agent(concat!("vpnshop/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the Zarinpal HTTP client")?;
        let startpay = settings.startpay_url.clone().unwrap_or_else(|| settings.api_url.clone());
        Ok(Some(Zarinpal { http, api: settings.api_url.clone(), startpay, merchant_id, retries: settings.retries }))
    }

    fn merchant(&self) -> &str {
        self.merchant_id.expose_secret().trim()
    }

    /// Where the customer pays a payment of this authority.
    pub fn startpay_url(&self, authority: &str) -> String {
        format!("{}/pg/StartPay/{authority}", self.startpay.as_str().trim_end_matches('/'))
    }

    /// Asks Zarinpal whether the payment of `authority` was paid, for `amount_rial` (ours).
    pub async fn verify(&self, authority: &str, amount_rial: i64) -> Result<Verified, ZarinpalError> {
        let body = json!({ "merchant_id": self.merchant(), "amount": amount_rial, "authority": authority });
        let data = self.call("verify", &body).await?;
        Ok(Verified {
            already: int(data.get("code")) == Some(ALREADY_VERIFIED),
            ref_id: text(data.get("ref_id")),
            card_pan: text(data.get("card_pan")),
            card_hash: text(data.get("card_hash")),
        })
    }

    /// The payments Zarinpal holds as paid and not yet verified (its last 100).
    pub async fn unverified(&self) -> Result<Vec<Unverified>, ZarinpalError> {
        let data = self.call("unVerified", &json!({ "merchant_id": self.merchant() })).await?;
        let items = data.get("authorities").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|item| {
                let authority = text(item.get("authority")).filter(|a| valid_authority(a))?;
                Some(Unverified { authority, amount: int(item.get("amount")) })
            })
            .collect())
    }

    /// POSTs `/pg/v4/payment/{endpoint}.json`; its `data` when the code is 100 or 101. Tried again (at most
    /// `retries` times) while Zarinpal cannot be reached or answers 5xx without a code.
    async fn call(&self, endpoint: &str, body: &Value) -> Result<Map<String, Value>, ZarinpalError> {
        let url = format!("{}/pg/v4/payment/{endpoint}.json", self.api.as_str().trim_end_matches('/'));
        let mut attempt = 0;
        loop {
            let result = self.call_once(&url, body).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(ZarinpalError::Code { .. }) => "code",
                Err(ZarinpalError::Unavailable(_)) => "unavailable",
            };
            metrics::counter!("vpnshop_zarinpal_calls_total", "endpoint" => endpoint.to_owned(), "outcome" => outcome)
                .increment(1);
            match result {
                Err(ZarinpalError::Unavailable(why)) if attempt < self.retries => {
                    attempt += 1;
                    tracing::debug!(zarinpal.endpoint = endpoint, error = %why, attempt, "Zarinpal call tried again");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, url: &str, body: &Value) -> Result<Map<String, Value>, ZarinpalError> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send()
            .await
            .map_err(|e| ZarinpalError::Unavailable(describe(e)))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ZarinpalError::Unavailable(describe(e)))?;
        read_answer(status.as_u16(), &bytes)
    }
}

/// A reqwest error without its URL (nothing secret is in ours, but keep logs short).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

/// Reads an answer of any HTTP status: `data` when its code is 100 or 101, else the code and message found in
/// `errors` (or in `data`).
pub fn read_answer(status: u16, body: &[u8]) -> Result<Map<String, Value>, ZarinpalError> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(ZarinpalError::Unavailable(format!("HTTP {status} without a JSON answer")));
    };
    let data = object(value.get("data"));
    if let Some(data) = data
        && matches!(int(data.get("code")), Some(VERIFIED | ALREADY_VERIFIED))
    {
        return Ok(data.clone());
    }
    for part in [object(value.get("errors")), data].into_iter().flatten() {
        if let Some(code) = int(part.get("code")) {
            let message = text(part.get("message")).unwrap_or_default();
            return Err(ZarinpalError::Code { code, message: message.chars().take(200).collect() });
        }
    }
    Err(ZarinpalError::Unavailable(format!("HTTP {status} without a code")))
}

/// An object; `[]` (Zarinpal's empty part), `null` or anything else is none.
fn object(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

/// An integer, or a string of one.
fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-empty string, or a number as one.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Gateway for Zarinpal {
    fn method(&self) -> PaymentMethod {
        PaymentMethod::Zarinpal
    }

    fn currencies(&self) -> &'static [Currency] {
        &[Currency::Irr]
    }

    async fn checkout(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError> {
        if request.amount.currency() != Currency::Irr {
            return Err(GatewayError::Refused(format!("Zarinpal takes IRR, not {}", request.amount.currency())));
        }
        // IRR has no minor digits: the minor amount is Rials
        let rial = request.amount.minor();
        if rial < MIN_AMOUNT_RIAL {
            return Err(GatewayError::Refused(format!("{rial} IRR is below Zarinpal's minimum of {MIN_AMOUNT_RIAL}")));
        }
        let body = json!({
            "merchant_id": self.merchant(),
            "amount": rial,
            "currency": "IRR",
            "callback_url": request.callback_url,
            "description": request.description.chars().take(500).collect::<String>(),
            "metadata": { "order_id": request.order_id.to_string() },
        });
        let data = self.call("request", &body).await?;
        let authority = text(data.get("authority"))
            .filter(|a| valid_authority(a))
            .ok_or_else(|| GatewayError::Unavailable("Zarinpal answered without a usable authority".into()))?;
        Ok(Checkout { url: self.startpay_url(&authority), processor_id: authority })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_errors_are_read_in_every_documented_shape() {
        let ok = br#"{"data":{"code":100,"message":"Success","authority":"A0000012","fee":100},"errors":[]}"#;
        assert_eq!(text(read_answer(200, ok).unwrap().get("authority")).as_deref(), Some("A0000012"));
        let again = br#"{"data":{"code":"101","message":"Verified","ref_id":"201"},"errors":[]}"#;
        assert_eq!(int(read_answer(200, again).unwrap().get("code")), Some(101));
        let refused =
            br#"{"data":[],"errors":{"code":-9,"message":"The input params invalid","validations":[{"amount":"x"}]}}"#;
        assert!(matches!(read_answer(422, refused), Err(ZarinpalError::Code { code: -9, .. })));
        let as_string = br#"{"data":[],"errors":{"code":"-51","message":"not paid"}}"#;
        assert!(matches!(read_answer(200, as_string), Err(ZarinpalError::Code { code: NOT_PAID, .. })));
        let in_data = br#"{"data":{"code":-54,"message":"Invalid authority."},"errors":[]}"#;
        assert!(matches!(read_answer(400, in_data), Err(ZarinpalError::Code { code: INVALID_AUTHORITY, .. })));
    }

    #[test]
    fn answers_without_a_code_are_unavailable_not_refusals() {
        for (status, body) in
            [(502, &b"<html>bad gateway</html>"[..]), (200, b"{}"), (500, b"{\"data\":[],\"errors\":[]}")]
        {
            assert!(matches!(read_answer(status, body), Err(ZarinpalError::Unavailable(_))), "{status}");
        }
    }

    #[test]
    fn codes_map_to_gateway_errors() {
        let code = |code| GatewayError::from(ZarinpalError::Code { code, message: String::new() });
        assert!(matches!(code(-9), GatewayError::Refused(_)));
        assert!(matches!(code(TOO_MANY_ATTEMPTS), GatewayError::Unavailable(_)));
        assert!(matches!(GatewayError::from(ZarinpalError::Unavailable("x".into())), GatewayError::Unavailable(_)));
    }

    #[test]
    fn authorities_are_plain_and_short() {
        assert!(valid_authority("A00000000000000000000000000217885159"));
        assert!(valid_authority("S0000000000000000000000000000000abcd"));
        for junk in ["", "A 1", "A/../1", "<script>", "A-1", &"A".repeat(65), "آ۱"] {
            assert!(!valid_authority(junk), "{junk:?}");
        }
    }
}
