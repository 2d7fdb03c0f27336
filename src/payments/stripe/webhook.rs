//! Stripe's webhook deliveries: the `Stripe-Signature` check (HMAC-SHA256 of `"<t>.<raw body>"` keyed with the
//! whole `whsec_…` string, compared in constant time against every `v1`, with any of several secrets while one
//! is rolled, within a time tolerance) and the events we act on, read from the verified bytes.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Why a delivery's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches the body with any of our signing secrets")]
    Mismatch,
}

impl SignatureError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Stale => "stale",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// A parsed `Stripe-Signature: t=…,v1=…[,v1=…][,v0=…]` header (other schemes are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub timestamp: i64,
    v1: Vec<[u8; 32]>,
}

impl Signature {
    pub fn parse(header: &str) -> Result<Signature, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        let mut any_v1 = false;
        for part in header.split(',') {
            let Some((key, value)) = part.split_once('=') else { continue };
            match key.trim() {
                "t" if timestamp.is_none() => {
                    timestamp = Some(value.trim().parse::<i64>().map_err(|_| SignatureError::Malformed)?)
                }
                "t" => return Err(SignatureError::Malformed),
                "v1" => {
                    any_v1 = true;
                    // a signature that is not 32 bytes of hex can match nothing
                    if let Ok(bytes) = hex::decode(value.trim())
                        && let Ok(sig) = <[u8; 32]>::try_from(bytes.as_slice())
                    {
                        v1.push(sig);
                    }
                }
                _ => {}
            }
        }
        match timestamp {
            Some(timestamp) if any_v1 => Ok(Signature { timestamp, v1 }),
            _ => Err(SignatureError::Malformed),
        }
    }

    /// Whether it was made within `tolerance_secs` of `now` (seconds since the epoch), either way.
    pub fn check_time(&self, now: i64, tolerance_secs: u64) -> Result<(), SignatureError> {
        let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(self.timestamp) > tolerance || self.timestamp.saturating_sub(now) > tolerance {
            return Err(SignatureError::Stale);
        }
        Ok(())
    }

    /// Whether one of its `v1` signatures is ours over `body`, with any of `secrets`. Every pair is compared, in
    /// constant time, whatever matches first.
    pub fn verify(&self, body: &[u8], secrets: &[&SecretString]) -> Result<(), SignatureError> {
        let t = self.timestamp.to_string();
        let mut matched = Choice::from(0);
        for secret in secrets {
            let expected = hmac_sha256(secret.expose_secret().as_bytes(), &[t.as_bytes(), b".", body]);
            for given in &self.v1 {
                matched |= expected.ct_eq(given);
            }
        }
        if bool::from(matched) { Ok(()) } else { Err(SignatureError::Mismatch) }
    }
}

/// The `Stripe-Signature` header value Stripe would send for `body` at `timestamp`, one `v1` per secret (tests
/// and local tools use it; the shop only verifies).
pub fn signature_header(body: &[u8], timestamp: i64, secrets: &[&str]) -> String {
    let t = timestamp.to_string();
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", body])));
    }
    header
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0_u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A verified event, as far as we read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub what: What,
}

/// What an event means for a payment.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// The session is paid (`checkout.session.completed` with `payment_status=paid`, or
    /// `checkout.session.async_payment_succeeded`).
    Paid(Session),
    /// Completed, but the money is still on its way (a delayed method): `async_payment_*` will follow.
    Processing(Session),
    /// It will not be paid (`checkout.session.async_payment_failed`, `checkout.session.expired`).
    Failed(Session, &'static str),
    /// Money went back (`charge.refunded`; `data.object` is the Charge).
    Refunded(Charge),
    /// An event we do not act on.
    Ignored,
}

/// The parts of a Checkout Session we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    pub id: String,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub payment_status: Option<String>,
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub metadata: Refs,
}

/// The parts of a Charge we use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Charge {
    pub id: String,
    #[serde(default, deserialize_with = "id_or_object")]
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub amount_refunded: i64,
    /// Wholly refunded (a partial refund leaves it false).
    pub refunded: bool,
    pub currency: String,
    #[serde(default)]
    pub metadata: Refs,
}

/// Our ids as we put them in a session's (and its payment's) metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Refs {
    #[serde(deserialize_with = "number_text")]
    pub order_id: Option<i64>,
    #[serde(deserialize_with = "number_text")]
    pub payment_id: Option<i64>,
    /// Our payment's public id: only an install that made the payment knows it.
    pub payment_ref: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: serde_json::Value,
}

/// Reads a verified delivery's body.
pub fn parse_event(body: &[u8]) -> Result<Event, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    let session = || serde_json::from_value::<Session>(envelope.data.object.clone());
    let what = match envelope.kind.as_str() {
        "checkout.session.completed" => {
            let s = session()?;
            if s.payment_status.as_deref() == Some("paid") { What::Paid(s) } else { What::Processing(s) }
        }
        "checkout.session.async_payment_succeeded" => What::Paid(session()?),
        "checkout.session.async_payment_failed" => What::Failed(session()?, "the payment failed"),
        "checkout.session.expired" => What::Failed(session()?, "the Checkout Session expired unpaid"),
        "charge.refunded" => What::Refunded(serde_json::from_value(envelope.data.object.clone())?),
        _ => What::Ignored,
    };
    Ok(Event { id: envelope.id, kind: envelope.kind, what })
}

/// `"pi_…"`, or the expanded object's `id`, or null.
fn id_or_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(id)) => Some(id),
        Some(serde_json::Value::Object(o)) => o.get("id").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    })
}

/// Metadata values are strings: `"42"` → 42; anything else → none.
fn number_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn hmac_matches_rfc_4231_and_pythons_hmac() {
        let rfc = hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(rfc), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // python3: hmac.new(key, b'1700000000.' + body, hashlib.sha256).hexdigest()
        let long_key = format!("whsec_{}", "k".repeat(80));
        let long = hmac_sha256(long_key.as_bytes(), &[b"1700000000", b".", BODY]);
        assert_eq!(hex::encode(long), "545670e24a7f0b041fb7d737700b056145bfc1968b7c0f442460fdbf12f20e5c");
        let header = signature_header(BODY, 1_700_000_000, &["whsec_test_secret"]);
        assert_eq!(header, "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a");
    }

    #[test]
    fn any_v1_with_any_secret_verifies_and_nothing_else_does() {
        let (old, new) = (secret("whsec_old"), secret("whsec_new"));
        let both = signature_header(BODY, 1_700_000_000, &["whsec_old", "whsec_new"]);
        let sig = Signature::parse(&format!("{both},v0=abc")).unwrap();
        assert_eq!(sig.verify(BODY, &[&new]), Ok(()));
        assert_eq!(sig.verify(BODY, &[&old]), Ok(()));
        assert_eq!(sig.verify(BODY, &[&secret("whsec_other")]), Err(SignatureError::Mismatch));
        assert_eq!(sig.verify(br#"{"id":"evt_2"}"#, &[&old, &new]), Err(SignatureError::Mismatch));
        // the timestamp is part of what is signed
        let moved = Signature::parse(&both.replace("t=1700000000", "t=1700000001")).unwrap();
        assert_eq!(moved.verify(BODY, &[&old, &new]), Err(SignatureError::Mismatch));
        // only v1 counts
        let v0 = signature_header(BODY, 1_700_000_000, &["whsec_old"]).replace("v1=", "v0=");
        assert_eq!(Signature::parse(&v0), Err(SignatureError::Malformed));
    }

    #[test]
    fn headers_without_a_timestamp_or_signature_are_malformed_and_old_ones_stale() {
        for bad in ["", "v1=00", "t=abc,v1=00", "t=1,t=2,v1=00", "t=1700000000"] {
            assert_eq!(Signature::parse(bad), Err(SignatureError::Malformed), "{bad:?}");
        }
        let sig = Signature::parse("t=1700000000,v1=zz").unwrap();
        assert_eq!(sig.check_time(1_700_000_300, 300), Ok(()));
        assert_eq!(sig.check_time(1_700_000_301, 300), Err(SignatureError::Stale));
        assert_eq!(sig.check_time(1_699_999_600, 300), Err(SignatureError::Stale));
        assert_eq!(sig.verify(BODY, &[&secret("whsec_old")]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn events_say_what_happened_to_a_session_or_charge() {
        let completed = |status: &str| {
            format!(
                r#"{{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{{"object":{{
                    "id":"cs_1","object":"checkout.session","amount_total":299,"currency":"usd",
                    "payment_status":"{status}","payment_intent":"pi_1","client_reference_id":"42",
                    "metadata":{{"order_id":"42","payment_id":"7"}}}}}}}}"#
            )
        };
        let paid = parse_event(completed("paid").as_bytes()).unwrap();
        let What::Paid(session) = &paid.what else { panic!("{paid:?}") };
        assert_eq!((session.amount_total, session.currency.as_deref()), (Some(299), Some("usd")));
        assert_eq!(session.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!(session.metadata, Refs { order_id: Some(42), payment_id: Some(7), payment_ref: None });
        assert!(matches!(parse_event(completed("unpaid").as_bytes()).unwrap().what, What::Processing(_)));

        let refund = br#"{"id":"evt_2","type":"charge.refunded","data":{"object":{"id":"ch_1","object":"charge",
            "amount":299,"amount_refunded":299,"refunded":true,"currency":"usd","payment_intent":{"id":"pi_1"},
            "metadata":{}}}}"#;
        let What::Refunded(charge) = parse_event(refund).unwrap().what else { panic!() };
        assert_eq!((charge.payment_intent.as_deref(), charge.refunded), (Some("pi_1"), true));
        let other = br#"{"id":"evt_3","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#;
        assert_eq!(parse_event(other).unwrap().what, What::Ignored);
        assert!(parse_event(br#"{"id":"evt_4","type":"checkout.session.expired","data":{"object":{}}}"#).is_err());
    }
}
