//! Provisioning end to end: the real app (job workers running) against a real node (sshd + v2ray on
//! loopback), checked with real v2ray clients browsing through it.

mod certificates;
mod flow;
mod isolation;
mod lifecycle;
mod metering;
mod resilience;
mod transports;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use vpnshop::config::JobSettings;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::services::access;
use vpnshop::services::servers::{self, Actor, ServerInput};
use vpnshop::services::subscriptions::{self, NewSubscription};

use crate::helpers::{TestApp, spawn_app_with};
use crate::support::{Origin, TestNode, TestV2rayClient};

/// A shop with one registered node in location `de`.
pub struct Shop {
    pub app: TestApp,
    pub node: TestNode,
    pub server_id: i64,
    pub origin: Origin,
}

impl Shop {
    pub fn pool(&self) -> &PgPool {
        &self.app.state.pool
    }
}

/// Starts a node and the app, and registers the node (pinned host key, restart through its own script).
pub async fn shop(pool: PgPool) -> Shop {
    let node = TestNode::start().await;
    let key = node.key_path();
    let origin = Origin::start().await;
    let allow = origin.allowance();
    let app = spawn_app_with(pool, move |s| {
        s.provision.allow_private_destinations.push(allow);
        s.provision.ssh_key_path = Some(key);
        s.provision.connect_timeout_secs = 3;
        s.provision.op_timeout_secs = 15;
        s.provision.removal_grace_secs = 1;
        s.provision.hard_cut_min_interval_secs = 0;
        s.provision.cap_cut_min_interval_secs = 0;
        s.jobs.backoff_base_secs = 1;
        s.jobs.backoff_max_secs = 2;
    })
    .await;
    let server_id = register_node(&app.state.pool, &node).await;
    Shop { app, node, server_id, origin }
}

/// Registers a test node as server `de-test` in location `de`; returns its id.
pub async fn register_node(pool: &PgPool, node: &TestNode) -> i64 {
    servers::add(pool, &node_input(node, "de-test", 100), Actor::CLI).await.expect("register the test node").id
}

/// A test node as the server `name` in location `de`, reached on loopback with its host key pinned.
pub fn node_input(node: &TestNode, name: &str, capacity: u32) -> ServerInput {
    let target = node.target();
    ServerInput {
        name: name.into(),
        location: "de".into(),
        public_host: "127.0.0.1".into(),
        public_port: node.proxy_port,
        ssh_host: Some("127.0.0.1".into()),
        ssh_port: node.ssh_port,
        ssh_user: target.ssh_user.clone(),
        host_key: Some(node.host_fingerprint.clone()),
        core: target.core,
        protocol: node.protocol,
        inbound_tag: target.inbounds[0].tag.clone(),
        api_port: node.api_port,
        config_path: Some(target.config_path.clone()),
        capacity,
        restart_command: Some(node.restart_command()),
        base_config: None,
        inbounds: Vec::new(),
    }
}

/// A customer with a paid order for `plan_code`, and the pending subscription it bought.
pub async fn subscribe(shop: &Shop, telegram_id: i64, plan_code: &str) -> i64 {
    subscribe_on(shop.pool(), &shop.app.state.settings.jobs, telegram_id, plan_code).await
}

/// [`subscribe`] on any database (a shop running as its own process, say), through `subscriptions::create`.
pub async fn subscribe_on(pool: &PgPool, jobs: &JobSettings, telegram_id: i64, plan_code: &str) -> i64 {
    let user: i64 = sqlx::query_scalar(
        "INSERT INTO users (telegram_id) VALUES ($1) ON CONFLICT (telegram_id) DO UPDATE SET username = NULL RETURNING id",
    )
    .bind(telegram_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let (plan_id, location, days, seats, cap): (i64, String, i32, i32, Option<i64>) =
        sqlx::query_as("SELECT id, location_code, duration_days, seats, data_cap_bytes FROM plans WHERE code = $1")
            .bind(plan_code)
            .fetch_one(pool)
            .await
            .unwrap();
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, paid_at)
         VALUES ($1, $2, 299, 'USD', 'paid', now()) RETURNING id",
    )
    .bind(user)
    .bind(plan_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let new = NewSubscription {
        user_id: user,
        order_id: Some(order),
        plan_id,
        location_code: location,
        is_trial: false,
        seats,
        duration_days: days,
        data_cap_bytes: cap,
    };
    let mut tx = pool.begin().await.unwrap();
    let id = subscriptions::create(&mut tx, &new, jobs).await.unwrap();
    tx.commit().await.unwrap();
    id
}

pub async fn status_of(pool: &PgPool, sub: i64) -> SubscriptionStatus {
    let status: String =
        sqlx::query_scalar("SELECT status FROM subscriptions WHERE id = $1").bind(sub).fetch_one(pool).await.unwrap();
    status.parse().unwrap()
}

/// Waits (polling) until `check` holds, or fails the test with `what`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_status(pool: &PgPool, sub: i64, want: SubscriptionStatus) {
    let start = Instant::now();
    while status_of(pool, sub).await != want {
        if start.elapsed() > Duration::from_secs(45) {
            panic!("subscription {sub} did not become {want} within 45 s; jobs: {:#?}", jobs(pool).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every job with its state (for failure messages).
pub async fn jobs(pool: &PgPool) -> Vec<(i64, String, String, i32, Option<String>)> {
    sqlx::query_as("SELECT id, kind, status, attempts, last_error FROM jobs ORDER BY id").fetch_all(pool).await.unwrap()
}

/// Waits until the node has no pending change for its clients (every job for it has run).
pub async fn wait_node_synced(pool: &PgPool, server_id: i64) {
    let start = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM clients WHERE server_id = $1 AND desired <> node_state)
                  + (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND kind LIKE 'node.%')",
        )
        .bind(server_id)
        .fetch_one(pool)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        if start.elapsed() > Duration::from_secs(45) {
            panic!("the node did not get in sync within 45 s; jobs: {:#?}", jobs(pool).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The share links of a subscription, in seat order.
pub async fn links_of(shop: &Shop, sub: i64) -> Vec<String> {
    let row = vpnshop::db::subscriptions::find(shop.pool(), sub).await.unwrap().unwrap();
    access::links(shop.pool(), &row, "test").await.unwrap().into_iter().map(|l| l.link).collect()
}

/// Whether a brand-new client connection with this link gets a page through the node.
pub async fn browses(shop: &Shop, link: &str) -> bool {
    let client = TestV2rayClient::start(link).await;
    client.fetch(&shop.origin.url("/")).await.is_ok()
}

/// One metering pass, waiting out a sync the job workers may be running on the node.
pub async fn meter(shop: &Shop) -> vpnshop::services::nodes::MeterReport {
    loop {
        match shop.app.state.nodes.meter(shop.server_id).await {
            Err(vpnshop::services::nodes::SyncError::Busy) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other.expect("metering"),
        }
    }
}

/// How many notices of `event` were enqueued for a subscription.
pub async fn notices(pool: &PgPool, sub: i64, event: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'notify.user' AND payload->>'subscription_id' = $1::text
            AND payload->>'event' = $2",
    )
    .bind(sub.to_string())
    .bind(event)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Starts a slow download (`chunks` × 16 KiB, one per `ms`) through `client`; resolves to the bytes received
/// or the error that cut it.
pub fn slow_download(
    shop: &Shop,
    client: &TestV2rayClient,
    chunks: usize,
    ms: u64,
) -> tokio::task::JoinHandle<Result<usize, String>> {
    let url = shop.origin.url(&format!("/slow/{chunks}/{ms}"));
    let proxy = format!("http://127.0.0.1:{}", client.http_port);
    tokio::spawn(async move {
        let http = reqwest::Client::builder().proxy(reqwest::Proxy::all(proxy).unwrap()).build().unwrap();
        let mut res = http.get(url).send().await.map_err(|e| e.to_string())?;
        let mut got = 0;
        loop {
            match res.chunk().await {
                Ok(Some(bytes)) => got += bytes.len(),
                Ok(None) => return Ok(got),
                Err(e) => return Err(format!("cut after {got} bytes: {e}")),
            }
        }
    })
}
