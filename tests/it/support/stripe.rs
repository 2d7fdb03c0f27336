//! `FakeStripe`: a local Stripe API on 127.0.0.1 (port 0) for `POST /v1/checkout/sessions` as Stripe documents
//! it — form-encoded parameters, `Authorization: Bearer`, Stripe's error objects (`amount_too_small`, invalid
//! parameters, a wrong key), and idempotency: a result is stored under its `Idempotency-Key` once the request
//! executed (500s included) and replayed for the same key; the same key with other parameters is a 400
//! `idempotency_error`; a request while the same key still runs is a 409 `idempotency_key_in_use`; validation
//! errors are not stored. Failures can be injected (500, a hang, a lost answer). It records every call and keeps
//! the sessions, and builds the events Stripe would send about them; [`signature`] signs them like Stripe.
//! `GET /v1/checkout/sessions/{id}` shows a session as it stands now (404 `resource_missing` for one it never
//! made); a test changes that state without any webhook ([`FakeStripe::pay`], [`FakeStripe::expire`]) and can
//! make reads fail ([`FakeStripe::fail_retrieves`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use url::Url;

pub const STRIPE_KEY: &str = "sk_test_vpnshop_fake_key";
pub const WEBHOOK_SECRET: &str = "whsec_test_vpnshop_primary";

/// How the next request(s) that pass validation go wrong (see [`FakeStripe::fail_next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 500 `api_error`, stored under the key like Stripe does (a retry with that key gets it again).
    Status500,
    /// Never answers (the key stays in use while the request is held).
    Hang,
    /// Creates the session and stores the result, then answers only after this long (an answer lost to a
    /// client's timeout).
    SlowAfterCreate(Duration),
    /// Session reads only: a 400 `invalid_request_error` (creates ignore it).
    Status400,
}

/// One request the fake received, and how it was answered.
#[derive(Debug, Clone)]
pub struct StripeCall {
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub form: BTreeMap<String, String>,
    pub status: u16,
}

/// A Checkout Session as the fake keeps it (the JSON Stripe would show).
#[derive(Debug, Clone)]
pub struct FakeSession {
    pub id: String,
    pub json: Value,
    /// `payment_intent_data[metadata]`: the PaymentIntent's (and its Charge's) metadata.
    pub intent_metadata: Value,
}

struct Stored {
    params: BTreeMap<String, String>,
    status: u16,
    body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<StripeCall>,
    sessions: Vec<FakeSession>,
    stored: HashMap<String, Stored>,
    running: HashSet<String>,
    failures: VecDeque<Failure>,
    /// How the next session reads fail (`Status500`, `Hang`), in order.
    retrieve_failures: VecDeque<Failure>,
    /// The session ids read, in order, and how each was answered (0: never).
    retrieved: Vec<(String, u16)>,
    next: u64,
}

#[derive(Default)]
struct Shared(Mutex<Inner>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake Stripe; stopped when dropped.
pub struct FakeStripe {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake stripe");
        let addr = listener.local_addr().expect("fake stripe addr");
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(retrieve_session))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { addr, shared, task }
    }

    /// The API base URL, for `stripe.api_url`.
    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("fake stripe url")
    }

    /// The next request that passes validation fails this way (several queue up, in order).
    pub fn fail_next(&self, failure: Failure) {
        self.shared.lock().failures.push_back(failure);
    }

    /// The next `n` session reads fail this way (`Status500` or `Hang`).
    pub fn fail_retrieves(&self, n: usize, failure: Failure) {
        self.shared.lock().retrieve_failures.extend(std::iter::repeat_n(failure, n));
    }

    /// The session ids read with `GET /v1/checkout/sessions/{id}`, in order, with the status answered (0: none).
    pub fn retrieved(&self) -> Vec<(String, u16)> {
        self.shared.lock().retrieved.clone()
    }

    /// The session expired unpaid (Stripe closed it); returns it as it is now.
    pub fn expire(&self, id: &str) -> Value {
        let mut inner = self.shared.lock();
        let session = inner.sessions.iter_mut().find(|s| s.id == id).unwrap_or_else(|| panic!("no session {id}"));
        session.json["status"] = json!("expired");
        session.json["url"] = Value::Null;
        session.json.clone()
    }

    /// Changes the session as Stripe shows it.
    pub fn edit(&self, id: &str, change: impl FnOnce(&mut Value)) {
        let mut inner = self.shared.lock();
        let session = inner.sessions.iter_mut().find(|s| s.id == id).unwrap_or_else(|| panic!("no session {id}"));
        change(&mut session.json);
    }

    /// Stripe forgets the session (another account's key, a deleted test session): reads answer 404.
    pub fn forget(&self, id: &str) {
        self.shared.lock().sessions.retain(|s| s.id != id);
    }

    pub fn calls(&self) -> Vec<StripeCall> {
        self.shared.lock().calls.clone()
    }

    /// The sessions created, oldest first.
    pub fn sessions(&self) -> Vec<FakeSession> {
        self.shared.lock().sessions.clone()
    }

    pub fn session(&self, id: &str) -> Value {
        self.sessions().into_iter().find(|s| s.id == id).unwrap_or_else(|| panic!("no session {id}")).json
    }

    /// The session is paid (by card): complete, paid, with a PaymentIntent; returns it as it is now.
    pub fn pay(&self, id: &str) -> Value {
        let mut inner = self.shared.lock();
        inner.next += 1;
        let pi = format!("pi_test_{:06}", inner.next);
        let session = inner.sessions.iter_mut().find(|s| s.id == id).unwrap_or_else(|| panic!("no session {id}"));
        session.json["status"] = json!("complete");
        session.json["payment_status"] = json!("paid");
        if session.json["payment_intent"].is_null() {
            session.json["payment_intent"] = json!(pi);
        }
        session.json.clone()
    }

    /// `checkout.session.completed` for a session paid now.
    pub fn completed_event(&self, id: &str) -> Value {
        event("checkout.session.completed", self.pay(id))
    }

    /// `checkout.session.expired`: the session closed unpaid.
    pub fn expired_event(&self, id: &str) -> Value {
        let mut session = self.session(id);
        session["status"] = json!("expired");
        event("checkout.session.expired", session)
    }

    /// `charge.refunded`: the session's payment wholly refunded. The Charge carries the PaymentIntent's metadata.
    pub fn refunded_event(&self, id: &str) -> Value {
        let session = self.pay(id);
        let metadata = self.sessions().into_iter().find(|s| s.id == id).unwrap().intent_metadata;
        let charge = json!({
            "id": format!("ch_test_{}", &session["payment_intent"].as_str().unwrap()[8..]),
            "object": "charge",
            "amount": session["amount_total"],
            "amount_captured": session["amount_total"],
            "amount_refunded": session["amount_total"],
            "currency": session["currency"],
            "paid": true,
            "refunded": true,
            "status": "succeeded",
            "payment_intent": session["payment_intent"],
            "metadata": metadata,
        });
        event("charge.refunded", charge)
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An event envelope as Stripe sends it, with a fresh id.
pub fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": format!("evt_test_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": chrono::Utc::now().timestamp(),
        "type": kind,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": object },
    })
}

/// `Stripe-Signature` for `payload` signed at `t` with each secret: `t=…,v1=…[,v1=…]` (HMAC-SHA256 of
/// `"t.payload"`, keyed with the whole secret). Written here on its own, not borrowed from the code under test.
pub fn signature(payload: &str, t: i64, secrets: &[&str]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mac = hmac(secret.as_bytes(), format!("{t}.{payload}").as_bytes());
        header.push_str(&format!(",v1={}", hex::encode(mac)));
    }
    header
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
}

fn error(status: u16, kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> (u16, Value) {
    let mut e = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        e["code"] = json!(code);
    }
    if let Some(param) = param {
        e["param"] = json!(param);
    }
    (status, json!({ "error": e }))
}

/// Clears a held request's key when the client gives up (the handler is dropped).
struct Running(Arc<Shared>, String);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.lock().running.remove(&self.1);
    }
}

async fn create_session(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let key = header("idempotency-key");
    let mut call = StripeCall {
        authorization: header("authorization"),
        idempotency_key: key.clone(),
        form: form.clone(),
        status: 0,
    };
    let (status, body, delay, hold) = {
        let mut inner = shared.lock();
        let (status, body, delay, hold) = decide(&mut inner, &call, key.as_deref(), &header("content-type"));
        call.status = status;
        inner.calls.push(call);
        (status, body, delay, hold)
    };
    let _running = hold.then(|| Running(shared.clone(), key.clone().unwrap_or_default()));
    if hold {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    response.headers_mut().insert("request-id", format!("req_test_{}", uuid::Uuid::new_v4().simple()).parse().unwrap());
    response
}

async fn retrieve_session(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let (status, body, hang) = {
        let mut inner = shared.lock();
        let (status, body, hang) = if authorization != Some(&format!("Bearer {STRIPE_KEY}")) {
            let (status, body) = error(401, "invalid_request_error", None, None, "Invalid API Key provided");
            (status, body, false)
        } else {
            match inner.retrieve_failures.pop_front() {
                Some(Failure::Hang) => (0, Value::Null, true),
                Some(Failure::Status500) => {
                    let (status, body) = error(500, "api_error", None, None, "An unknown error occurred");
                    (status, body, false)
                }
                Some(Failure::Status400) => {
                    let (status, body) = error(400, "invalid_request_error", None, None, "Invalid request");
                    (status, body, false)
                }
                _ => match inner.sessions.iter().find(|s| s.id == id) {
                    Some(session) => (200, session.json.clone(), false),
                    None => {
                        let message = format!("No such checkout.session: '{id}'");
                        let (status, body) =
                            error(404, "invalid_request_error", Some("resource_missing"), Some("session"), &message);
                        (status, body, false)
                    }
                },
            }
        };
        inner.retrieved.push((id, status));
        (status, body, hang)
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Status, body, a delay before answering, whether to hold the request.
fn decide(
    inner: &mut Inner,
    call: &StripeCall,
    key: Option<&str>,
    content_type: &Option<String>,
) -> (u16, Value, Option<Duration>, bool) {
    let done = |(status, body): (u16, Value)| (status, body, None, false);
    if call.authorization.as_deref() != Some(&format!("Bearer {STRIPE_KEY}")) {
        return done(error(401, "invalid_request_error", None, None, "Invalid API Key provided"));
    }
    if !content_type.as_deref().unwrap_or_default().starts_with("application/x-www-form-urlencoded") {
        return done(error(400, "invalid_request_error", None, None, "Invalid request: expected a form body"));
    }
    if let Some(key) = key {
        if key.is_empty() || key.len() > 255 {
            return done(error(400, "invalid_request_error", None, None, "Idempotency-Key: 1 to 255 characters"));
        }
        if inner.running.contains(key) {
            let message = "There is currently another in-progress request using this Idempotent Key";
            return done(error(409, "idempotency_error", Some("idempotency_key_in_use"), None, message));
        }
        if let Some(stored) = inner.stored.get(key) {
            if stored.params != call.form {
                let message =
                    "Keys for idempotent requests can only be used with the same parameters they were first used with";
                return done(error(400, "idempotency_error", None, None, message));
            }
            return done((stored.status, stored.body.clone()));
        }
    }
    if let Err(invalid) = validate(&call.form) {
        return done(invalid);
    }
    let failure = inner.failures.pop_front();
    if failure == Some(Failure::Hang) {
        if let Some(key) = key {
            inner.running.insert(key.to_owned());
        }
        return (0, Value::Null, None, true);
    }
    let (status, body) = match failure {
        Some(Failure::Status500) => error(500, "api_error", None, None, "An unknown error occurred"),
        _ => (200, new_session(inner, &call.form)),
    };
    if let Some(key) = key {
        inner.stored.insert(key.to_owned(), Stored { params: call.form.clone(), status, body: body.clone() });
    }
    let delay = match failure {
        Some(Failure::SlowAfterCreate(d)) => Some(d),
        _ => None,
    };
    (status, body, delay, false)
}

fn validate(form: &BTreeMap<String, String>) -> Result<(), (u16, Value)> {
    let invalid = |param: &str, message: &str| {
        Err(error(400, "invalid_request_error", Some("parameter_invalid"), Some(param), message))
    };
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("mode") != Some("payment") {
        return invalid("mode", "mode must be payment here");
    }
    let currency = get("line_items[0][price_data][currency]").unwrap_or_default();
    if !["usd", "eur"].contains(&currency) {
        return invalid("line_items[0][price_data][currency]", "Invalid currency: a lowercase ISO code");
    }
    let Some(amount) = get("line_items[0][price_data][unit_amount]").and_then(|a| a.parse::<i64>().ok()) else {
        return invalid("line_items[0][price_data][unit_amount]", "Invalid integer");
    };
    if amount < 50 {
        let message = "The Checkout Session's total amount due must add up to at least $0.50 usd";
        return Err(error(400, "invalid_request_error", Some("amount_too_small"), Some("line_items"), message));
    }
    if get("line_items[0][quantity]") != Some("1") || get("line_items[0][price_data][product_data][name]").is_none() {
        return invalid("line_items[0]", "a quantity and a product name are required");
    }
    for url in ["success_url", "cancel_url"] {
        if get(url).is_none_or(|u| Url::parse(u).is_err()) {
            return invalid(url, "Not a valid URL");
        }
    }
    let now = chrono::Utc::now().timestamp();
    if let Some(at) = get("expires_at") {
        let ok = at.parse::<i64>().is_ok_and(|at| at >= now + 1800 && at <= now + 86_400);
        if !ok {
            return invalid("expires_at", "expires_at must be 30 minutes to 24 hours after creation");
        }
    }
    for (k, v) in form {
        if let Some(name) = k.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']'))
            && (name.len() > 40 || v.len() > 500)
        {
            return invalid(k, "metadata keys are at most 40 characters and values 500");
        }
    }
    Ok(())
}

fn new_session(inner: &mut Inner, form: &BTreeMap<String, String>) -> Value {
    inner.next += 1;
    let id = format!("cs_test_{:06}{}", inner.next, &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let prefixed = |prefix: &str| -> Value {
        form.iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.strip_suffix(']')?.to_owned(), json!(v))))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    let get = |k: &str| form.get(k).cloned();
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "url": format!("https://checkout.stripe.test/c/pay/{id}"),
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_total": get("line_items[0][price_data][unit_amount]").and_then(|a| a.parse::<i64>().ok()),
        "amount_subtotal": get("line_items[0][price_data][unit_amount]").and_then(|a| a.parse::<i64>().ok()),
        "currency": get("line_items[0][price_data][currency]"),
        "client_reference_id": get("client_reference_id"),
        "metadata": prefixed("metadata["),
        "payment_intent": null,
        "success_url": get("success_url"),
        "cancel_url": get("cancel_url"),
        "expires_at": get("expires_at").and_then(|a| a.parse::<i64>().ok()),
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
    });
    let intent_metadata = prefixed("payment_intent_data[metadata][");
    inner.sessions.push(FakeSession { id, json: session.clone(), intent_metadata });
    session
}
