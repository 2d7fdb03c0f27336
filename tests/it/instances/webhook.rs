//! Telegram's side of the webhook, behind a load balancer in front of several instances: each update is POSTed to
//! the next instance in turn until one answers 200 (an update not answered 200 — refused, cut off by a crash,
//! never connected — is delivered again, to the next instance, as Telegram and a load balancer do). Some updates
//! are delivered twice on purpose: once more after their 200 (the answer was lost on the way back, so Telegram
//! sends the update again), or to two instances at once (Telegram gave up waiting on the first and sent it again
//! while the first was still being stored).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::bot::SECRET;

/// Of the updates, about this share is delivered once more after its 200…
const LOST_ANSWER: f64 = 0.12;
/// …and this share to two instances at once.
const TWICE_AT_ONCE: f64 = 0.08;
/// How long an instance that refused a connection is left out by the load balancer.
const DOWN_FOR: Duration = Duration::from_millis(300);

pub struct Webhook {
    urls: Vec<String>,
    down_until: Mutex<Vec<Option<Instant>>>,
    next: AtomicUsize,
    http: reqwest::Client,
    rng: Mutex<StdRng>,
    /// Deliveries answered 200, duplicates included.
    acked: AtomicUsize,
    /// Attempts not answered 200 (and delivered again).
    failed: AtomicUsize,
    /// Every update id delivered.
    ids: Mutex<BTreeSet<i64>>,
    /// The extra deliveries still running.
    extra: Mutex<Vec<JoinHandle<()>>>,
    extras: AtomicUsize,
}

impl Webhook {
    pub fn new(urls: Vec<String>, seed: u64) -> Arc<Webhook> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(8)
            .build()
            .expect("webhook client");
        Arc::new(Webhook {
            down_until: Mutex::new(vec![None; urls.len()]),
            urls,
            next: AtomicUsize::new(0),
            http,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            acked: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            ids: Mutex::new(BTreeSet::new()),
            extra: Mutex::new(Vec::new()),
            extras: AtomicUsize::new(0),
        })
    }

    /// Delivers an update until an instance answers 200; maybe once more in the background (see the module docs).
    pub async fn deliver(self: &Arc<Self>, update: Value) {
        let id = update["update_id"].as_i64().expect("an update id");
        self.ids.lock().unwrap().insert(id);
        let body = update.to_string();
        let (lost, twice) = {
            let mut rng = self.rng.lock().unwrap();
            (rng.random_bool(LOST_ANSWER), rng.random_bool(TWICE_AT_ONCE))
        };
        if twice {
            self.again(body.clone());
        }
        self.until_acknowledged(&body).await;
        if lost {
            self.again(body);
        }
    }

    fn again(self: &Arc<Self>, body: String) {
        let hook = self.clone();
        self.extras.fetch_add(1, Ordering::Relaxed);
        self.extra.lock().unwrap().push(tokio::spawn(async move { hook.until_acknowledged(&body).await }));
    }

    async fn until_acknowledged(&self, body: &str) {
        let start = Instant::now();
        loop {
            let i = self.pick();
            let sent = self
                .http
                .post(&self.urls[i])
                .header("x-telegram-bot-api-secret-token", SECRET)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await;
            match sent {
                Ok(res) if res.status() == 200 => {
                    self.acked.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    if e.is_connect() {
                        self.down_until.lock().unwrap()[i] = Some(Instant::now() + DOWN_FOR);
                    }
                }
            }
            self.failed.fetch_add(1, Ordering::Relaxed);
            assert!(start.elapsed() < Duration::from_secs(40), "no instance took update {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next instance in turn that the load balancer does not hold for down.
    fn pick(&self) -> usize {
        let down = self.down_until.lock().unwrap();
        let now = Instant::now();
        for _ in 0..self.urls.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
            if down[i].is_none_or(|until| until <= now) {
                return i;
            }
        }
        self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len()
    }

    /// Deliveries answered 200 so far (duplicates included).
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Attempts that were not answered 200 and were delivered again.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Deliveries made on purpose on top of the first one of each update.
    pub fn duplicates(&self) -> usize {
        self.extras.load(Ordering::Relaxed)
    }

    /// Every update id delivered.
    pub fn ids(&self) -> Vec<i64> {
        self.ids.lock().unwrap().iter().copied().collect()
    }

    /// Waits for every extra delivery to be acknowledged.
    pub async fn settle(&self) {
        loop {
            let pending: Vec<JoinHandle<()>> = std::mem::take(&mut *self.extra.lock().unwrap());
            if pending.is_empty() {
                return;
            }
            for task in pending {
                task.await.expect("an extra delivery");
            }
        }
    }
}
