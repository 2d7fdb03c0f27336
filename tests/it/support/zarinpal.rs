//! `FakeZarinpal`: a local Zarinpal (REST v4) on 127.0.0.1, port 0, speaking the documented protocol:
//! `request.json` (checks the merchant, an integer-or-digit-string Rial amount of at least 10,000, the callback
//! URL and description; answers an authority), the StartPay page, `verify.json` (100 the first time, 101 after,
//! -50 for another amount, -51 while unpaid or cancelled, -54 for an unknown authority) and `unVerified.json`
//! (paid and never verified; `code` as a string, as in Zarinpal's own example). Empty parts are `[]`, error
//! answers come with assorted HTTP statuses, and any endpoint can be made to answer 500 or to hang.
//! Tests play the payer with [`FakeZarinpal::pay`] and [`FakeZarinpal::cancel`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

/// The merchant id the fake accepts (any UUID works in Zarinpal's sandbox; this one here).
pub const MERCHANT: &str = "1344b5d4-0048-11e8-94db-005056a205be";

/// How the next calls of an endpoint fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 500 with an HTML body (no code).
    Status500,
    /// No answer for this long (longer than the client's timeout).
    Hang(Duration),
    /// An error answer with this code (e.g. -53: a session of another merchant).
    Code(i64),
}

/// A payment as Zarinpal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub amount: i64,
    pub callback_url: String,
    pub description: String,
    pub order_id: Option<String>,
    pub paid: bool,
    pub cancelled: bool,
    pub verified: bool,
    pub ref_id: i64,
}

/// One call the fake received: the endpoint (`request`, `verify`, `unVerified`) and its JSON body.
#[derive(Debug, Clone)]
pub struct Call {
    pub endpoint: String,
    pub body: Value,
    /// The answer's `code` (data or errors), if it answered one.
    pub code: Option<i64>,
}

#[derive(Default)]
struct Inner {
    payments: HashMap<String, Held>,
    calls: Vec<Call>,
    failures: Vec<(String, u32, Failure)>,
    next: u64,
    /// Answer `code` as a digit string in verify answers too.
    string_codes: bool,
    /// Leave these out of `unVerified.json` (it shows only the last 100).
    hidden: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake; stopped when dropped.
pub struct FakeZarinpal {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl FakeZarinpal {
    pub async fn start() -> FakeZarinpal {
        let shared: Shared = Arc::default();
        let app = Router::new()
            .route("/pg/v4/payment/{endpoint}", post(endpoint))
            .route("/pg/StartPay/{authority}", get(start_pay))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake zarinpal");
        let addr = listener.local_addr().expect("fake zarinpal addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeZarinpal { addr, shared, task }
    }

    /// The base URL, for `zarinpal.api_url`.
    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("fake zarinpal url")
    }

    /// Makes the next `times` calls of `endpoint` (`request`, `verify`, `unVerified`) fail.
    pub fn fail_next(&self, endpoint: &str, times: u32, failure: Failure) {
        lock(&self.shared).failures.push((endpoint.to_owned(), times, failure));
    }

    pub fn set_string_codes(&self, on: bool) {
        lock(&self.shared).string_codes = on;
    }

    /// Leaves `authority` out of `unVerified.json`.
    pub fn hide_from_unverified(&self, authority: &str) {
        lock(&self.shared).hidden.push(authority.to_owned());
    }

    /// The payer pays: the query string Zarinpal's redirect puts on the callback URL.
    pub fn pay(&self, authority: &str) -> String {
        let mut inner = lock(&self.shared);
        let held = inner.payments.get_mut(authority).expect("a payment the fake issued");
        held.paid = true;
        format!("Authority={authority}&Status=OK")
    }

    /// The payer gives up on the payment page.
    pub fn cancel(&self, authority: &str) -> String {
        let mut inner = lock(&self.shared);
        inner.payments.get_mut(authority).expect("a payment the fake issued").cancelled = true;
        format!("Authority={authority}&Status=NOK")
    }

    /// Zarinpal now holds `amount` for this payment (as if it had been requested with it).
    pub fn set_amount(&self, authority: &str, amount: i64) {
        lock(&self.shared).payments.get_mut(authority).expect("a payment the fake issued").amount = amount;
    }

    /// Zarinpal no longer knows this authority (verify answers -54).
    pub fn forget(&self, authority: &str) {
        lock(&self.shared).payments.remove(authority);
    }

    /// Verifies as if a verify of ours had reached Zarinpal and its answer been lost.
    pub fn mark_verified(&self, authority: &str) {
        lock(&self.shared).payments.get_mut(authority).expect("a payment the fake issued").verified = true;
    }

    pub fn payment(&self, authority: &str) -> Option<Held> {
        lock(&self.shared).payments.get(authority).cloned()
    }

    pub fn calls(&self, endpoint: &str) -> Vec<Call> {
        lock(&self.shared).calls.iter().filter(|c| c.endpoint == endpoint).cloned().collect()
    }
}

impl Drop for FakeZarinpal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An integer, or a digit string (Zarinpal's own examples send both).
fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn success(data: Value) -> (StatusCode, Value) {
    (StatusCode::OK, json!({ "data": data, "errors": [] }))
}

fn error(status: StatusCode, code: i64, message: &str) -> (StatusCode, Value) {
    (status, json!({ "data": [], "errors": { "code": code, "message": message, "validations": [] } }))
}

async fn endpoint(State(shared): State<Shared>, Path(file): Path<String>, body: String) -> Response {
    let name = file.strip_suffix(".json").unwrap_or(&file).to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (index, failure) = {
        let mut inner = lock(&shared);
        inner.calls.push(Call { endpoint: name.clone(), body: body.clone(), code: None });
        let index = inner.calls.len() - 1;
        let found = inner.failures.iter_mut().find(|(e, n, _)| *e == name && *n > 0);
        let failure = found.map(|(_, n, f)| {
            *n -= 1;
            *f
        });
        (index, failure)
    };
    match failure {
        Some(Failure::Status500) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, Html("<h1>500 Internal Server Error</h1>")).into_response();
        }
        Some(Failure::Hang(d)) => tokio::time::sleep(d).await,
        Some(Failure::Code(code)) => {
            let (status, answer) = error(StatusCode::UNPROCESSABLE_ENTITY, code, "injected error");
            return (status, axum::Json(answer)).into_response();
        }
        None => {}
    }
    let mut inner = lock(&shared);
    let (status, mut answer) = if body["merchant_id"].as_str() != Some(MERCHANT) {
        error(StatusCode::UNAUTHORIZED, -10, "Terminal is not valid, please check merchant_id or ip address.")
    } else {
        match name.as_str() {
            "request" => request(&mut inner, &body),
            "verify" => verify(&mut inner, &body),
            "unVerified" => unverified(&inner),
            _ => return StatusCode::NOT_FOUND.into_response(),
        }
    };
    let code = int(&answer["data"]["code"]).or_else(|| int(&answer["errors"]["code"]));
    if inner.string_codes && name == "verify" {
        for part in ["data", "errors"] {
            if let Some(c) = answer[part].get("code").and_then(Value::as_i64) {
                answer[part]["code"] = json!(c.to_string());
            }
        }
    }
    inner.calls[index].code = code;
    (status, Json(answer)).into_response()
}

fn request(inner: &mut Inner, body: &Value) -> (StatusCode, Value) {
    let amount = int(&body["amount"]);
    let callback = body["callback_url"].as_str().unwrap_or_default();
    let description = body["description"].as_str().unwrap_or_default();
    let valid = amount.is_some_and(|a| a >= 10_000)
        && Url::parse(callback).is_ok()
        && !description.is_empty()
        && description.chars().count() <= 500
        && body["currency"].as_str().is_none_or(|c| c == "IRR" || c == "IRT");
    let Some(amount) = amount.filter(|_| valid) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "data": [], "errors": { "code": -9, "message": "The input params invalid, validation error.",
                    "validations": [{ "amount": "The amount must be at least 10000." }] } }),
        );
    };
    inner.next += 1;
    let authority = format!("A{:035}", 217_885_000 + inner.next);
    let held = Held {
        amount,
        callback_url: callback.to_owned(),
        description: description.to_owned(),
        order_id: body["metadata"]["order_id"].as_str().map(str::to_owned),
        paid: false,
        cancelled: false,
        verified: false,
        ref_id: 200 + i64::try_from(inner.next).unwrap_or(0),
    };
    inner.payments.insert(authority.clone(), held);
    success(json!({ "code": 100, "message": "Success", "authority": authority, "fee_type": "Merchant", "fee": 100 }))
}

fn verify(inner: &mut Inner, body: &Value) -> (StatusCode, Value) {
    let authority = body["authority"].as_str().unwrap_or_default();
    let Some(held) = inner.payments.get_mut(authority) else {
        return error(StatusCode::NOT_FOUND, -54, "Invalid authority.");
    };
    if !held.paid || held.cancelled {
        return error(StatusCode::OK, -51, "Session is not valid, session is not active paid try.");
    }
    if int(&body["amount"]) != Some(held.amount) {
        return error(StatusCode::BAD_REQUEST, -50, "Session is not valid, amounts values is not the same.");
    }
    let (code, message) = if held.verified { (101, "Verified") } else { (100, "Verified") };
    held.verified = true;
    success(json!({
        "code": code, "message": message, "card_hash": format!("{:x}", held.ref_id * 7919),
        "card_pan": "502229******5995", "ref_id": held.ref_id, "fee_type": "Merchant", "fee": 0,
    }))
}

fn unverified(inner: &Inner) -> (StatusCode, Value) {
    let authorities: Vec<Value> = inner
        .payments
        .iter()
        .filter(|(a, p)| p.paid && !p.cancelled && !p.verified && !inner.hidden.contains(a))
        .map(|(a, p)| {
            json!({ "authority": a, "amount": p.amount, "callback_url": p.callback_url,
                    "referer": "https://shop.example/", "date": "2026-12-02 10:00:00" })
        })
        .collect();
    success(json!({ "code": "100", "message": "Success", "authorities": authorities }))
}

async fn start_pay(State(shared): State<Shared>, Path(authority): Path<String>) -> Response {
    match lock(&shared).payments.get(&authority) {
        Some(p) => {
            Html(format!("<h1>Zarinpal (fake)</h1><p>Pay {} IRR: {}</p>", p.amount, p.description)).into_response()
        }
        None => (StatusCode::NOT_FOUND, Html("<h1>Invalid authority</h1>")).into_response(),
    }
}
