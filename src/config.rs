//! Settings: `config/default.toml` → optional `config/<VPNSHOP_ENV>.toml` → the conventional variables
//! (`DATABASE_URL`, `REDIS_URL`, `TELEGRAM_BOT_TOKEN`) → `VPNSHOP__SECTION__KEY` variables. A secret can also be
//! read from a file named by `VPNSHOP__SECTION__KEY_FILE`. Secrets are `SecretString`, so `Debug` hides them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Where the service runs; production turns on JSON logs and requires real secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    fn parse(raw: &str) -> anyhow::Result<Environment> {
        match raw {
            "development" | "dev" => Ok(Environment::Development),
            "test" => Ok(Environment::Test),
            "production" | "prod" => Ok(Environment::Production),
            other => bail!("VPNSHOP_ENV must be development, test or production, got {other:?}"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    #[serde(skip_deserializing, default = "default_env")]
    pub env: Environment,
    pub http: HttpSettings,
    pub metrics: MetricsSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub sentry: SentrySettings,
    #[serde(default)]
    pub otel: OtelSettings,
    pub telegram: TelegramSettings,
    pub stripe: StripeSettings,
    pub zarinpal: ZarinpalSettings,
    pub security: SecuritySettings,
    pub jobs: JobSettings,
    pub scheduler: SchedulerSettings,
    pub catalog: CatalogSettings,
    pub provision: ProvisionSettings,
    pub shop: ShopSettings,
    pub trial: TrialSettings,
    pub payments: PaymentSettings,
    #[serde(default)]
    pub instance: InstanceSettings,
    #[serde(default)]
    pub backup: BackupSettings,
}

/// `vpnshop backup` and the `backup` sweep: where backups go, how many stay, whom they are encrypted to.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BackupSettings {
    pub dir: PathBuf,
    /// The newest backup of each of this many most recent days (that have one) is kept.
    pub keep_daily: u32,
    /// And of each of this many most recent ISO weeks.
    pub keep_weekly: u32,
    /// age recipients (`age1…` or SSH public keys): backups are encrypted when any (or a file) is set.
    #[serde(deserialize_with = "text_list")]
    pub recipients: Vec<String>,
    pub recipients_file: Option<PathBuf>,
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub age: PathBuf,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            dir: ".data/backups".into(),
            keep_daily: 7,
            keep_weekly: 4,
            recipients: Vec::new(),
            recipients_file: None,
            pg_dump: "pg_dump".into(),
            pg_restore: "pg_restore".into(),
            age: "age".into(),
        }
    }
}

/// Who this process is among several instances on one database.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InstanceSettings {
    /// A name that stays the same across restarts of this instance and differs from every other running
    /// instance; default `<hostname>:<http port>`. A restarted instance takes over the work its previous run
    /// left half-done at once.
    pub name: Option<String>,
}

fn default_env() -> Environment {
    Environment::Development
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// A request (headers read to response ready) taking longer is answered 408; the webhook included.
    pub request_timeout_secs: u64,
    /// The most time a client has to send a request's headers; HTTP/1 keep-alive also ends after this long
    /// without a new request (hyper's header timer runs while a connection waits for a request).
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2; HTTP/1 when shorter than
    /// `header_read_timeout_secs`).
    pub idle_timeout_secs: u64,
    /// Open connections at most; at the cap no new connection is accepted until one closes.
    pub max_connections: usize,
    /// Open connections from one client address at most (an IPv6 /64 counts as one; trusted proxies are
    /// exempt): one client cannot take every place. Above Telegram's webhook `max_connections`.
    pub max_connections_per_ip: usize,
    /// Request body limit of every route but the Telegram webhook (`telegram.max_update_bytes`).
    pub max_body_bytes: usize,
    /// Per-client-IP rate limit of the public routes (the feed, unknown paths): sustained rate and burst.
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: u32,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For`/`Forwarded` name the client.
    #[serde(deserialize_with = "net_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The base URL customers reach us at (subscription feed links); default: `telegram.public_url`, then
    /// this listener's address.
    pub public_url: Option<Url>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub addr: SocketAddr,
    /// Seconds between readings of the database gauges (one set of queries per reading, whatever the scrapes).
    pub collect_interval_secs: u64,
    /// A reading's statements are cancelled after this long.
    pub collect_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: Option<SecretString>,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub migrate_on_start: bool,
    /// `serve` applies pending migrations that `vpnshop migrate --check` calls unsafe under load too (otherwise
    /// it refuses to start until an operator runs `vpnshop migrate`).
    #[serde(default)]
    pub migrate_unsafe_on_start: bool,
    /// Postgres `statement_timeout` of every connection (0 = none).
    pub statement_timeout_ms: u64,
    /// Postgres `idle_in_transaction_session_timeout` of every connection (0 = none).
    pub idle_in_transaction_timeout_ms: u64,
    /// The share of `max_connections` public routes (the feed) may use at once, so a flood of them cannot
    /// starve the bot's intake and the job workers.
    pub public_connections: u32,
    /// How long a public request waits for that share before it is answered 503.
    pub public_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: Option<SecretString>,
    /// Prefix of every key we write (several shops, or test runs, can share one Redis).
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
    /// `auto` (JSON in production, pretty otherwise), `json` or `pretty`.
    pub format: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SentrySettings {
    pub dsn: Option<SecretString>,
    pub traces_sample_rate: f32,
}

/// OpenTelemetry traces. Span ids are made (and printed in every log line) either way; spans are exported over
/// OTLP/HTTP (protobuf) only while `endpoint` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OtelSettings {
    /// The collector's base URL (`http://127.0.0.1:4318`): spans are posted to `{endpoint}/v1/traces`. Also
    /// from `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<Url>,
    /// `http/protobuf`, the only one spoken.
    pub protocol: String,
    /// `service.name` of every span; also from `OTEL_SERVICE_NAME`.
    pub service_name: String,
    /// The share of new traces exported (0–1); a trace carried on by a job keeps the decision of its start.
    pub sample_ratio: f64,
    /// Headers sent with every export (`Authorization=Basic …,X-Scope-OrgID=shop`): a secret. Also from
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub headers: Option<SecretString>,
    /// One export request (retries included) gives up after this long.
    pub timeout_secs: u64,
}

impl Default for OtelSettings {
    fn default() -> Self {
        OtelSettings {
            endpoint: None,
            protocol: "http/protobuf".into(),
            service_name: "vpnshop".into(),
            sample_ratio: 1.0,
            headers: None,
            timeout_secs: 5,
        }
    }
}

impl OtelSettings {
    /// The headers (`name=value` pairs, comma-separated); the first bad pair is an error naming its position.
    pub fn header_pairs(&self) -> Result<Vec<(String, String)>, String> {
        let Some(raw) = &self.headers else { return Ok(Vec::new()) };
        let mut pairs = Vec::new();
        for (i, item) in raw.expose_secret().split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
            let (name, value) = item.split_once('=').ok_or(format!("header {} is not name=value", i + 1))?;
            let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy().into_owned();
            let name = name.trim();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() || http::HeaderValue::from_str(&value).is_err() {
                return Err(format!("header {} is not a valid HTTP header", i + 1));
            }
            pairs.push((name.to_owned(), value));
        }
        Ok(pairs)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelegramSettings {
    pub token: Option<SecretString>,
    pub api_url: Url,
    /// Our public base URL; when set the bot runs in webhook mode.
    pub public_url: Option<Url>,
    pub webhook_secret: Option<SecretString>,
    /// Telegram's concurrent webhook connections (1-100).
    pub max_connections: u8,
    /// Updates waiting to be stored; beyond this the webhook answers 503 and Telegram retries.
    pub intake_queue: usize,
    /// The largest update body the webhook reads; a bigger one is answered 413.
    pub max_update_bytes: usize,
    /// How many chats' updates are handled at once.
    pub handlers: usize,
    /// The longest one update may take before its handler is stopped and the update retried.
    pub handler_timeout_secs: u64,
    /// How fast we send (Telegram's limits, with headroom).
    pub limits: TelegramLimitSettings,
    /// Telegram user ids of the shop's admins (alerts, reviews); a list, or `1,2,3` from the environment.
    #[serde(deserialize_with = "id_list")]
    pub admin_ids: Vec<i64>,
    /// The bot's @username without the @: payment pages link back to `https://t.me/<bot>?start=…`.
    #[serde(default)]
    pub bot_username: Option<String>,
    /// Broadcasts: their share of `limits.per_second` (the rest is left for replies) and how they send.
    #[serde(default)]
    pub broadcast: BroadcastSettings,
}

/// How broadcasts send (see `services::broadcasts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BroadcastSettings {
    /// Broadcast messages per second, across all instances; at most `telegram.limits.per_second`.
    pub per_second: u32,
    /// Recipients claimed at a time: the most a crash can leave uncertain (`unknown`, never sent again).
    pub batch: u32,
    /// How long a claim holds before a recipient whose sender vanished counts as `unknown`; above any send's time.
    pub claim_secs: u64,
}

impl Default for BroadcastSettings {
    fn default() -> Self {
        BroadcastSettings { per_second: 20, batch: 5, claim_secs: 60 }
    }
}

/// Telegram's sending limits as we keep them (see `bot::limits`).
#[derive(Debug, Clone, Deserialize)]
pub struct TelegramLimitSettings {
    /// Between two messages to one private chat.
    pub chat_interval_ms: u64,
    /// Between two messages to one group.
    pub group_interval_ms: u64,
    /// Messages per second across all chats (and all instances, through Redis).
    pub per_second: u32,
    /// Screen edits allowed at once in a chat before they are spaced like messages.
    pub edit_burst: u32,
}

/// Accepts `[1, 2]` (TOML) or `"1,2"` (an environment variable).
fn id_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ids {
        List(Vec<i64>),
        Text(String),
    }
    match Ids::deserialize(d)? {
        Ids::List(ids) => Ok(ids),
        Ids::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<i64>().map_err(|_| serde::de::Error::custom(format!("{s:?} is not a Telegram user id"))))
            .collect(),
    }
}

/// Accepts `["10.0.0.1", "10.1.0.0/16"]` (TOML) or `"10.0.0.1, 10.1.0.0/16"` (an environment variable); a bare
/// address is a network of one.
fn net_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nets {
        List(Vec<String>),
        Text(String),
    }
    let items = match Nets::deserialize(d)? {
        Nets::List(items) => items,
        Nets::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address or CIDR network")))
        })
        .collect()
}

/// Stripe Checkout: the API (`api_url`, the secret key, timeouts and safe retries) and the webhook's signing
/// secrets. Stripe is offered only while `secret_key` is set.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    pub api_url: Url,
    /// The secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…`).
    pub secret_key: Option<SecretString>,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: Option<SecretString>,
    /// More signing secrets accepted at the same time, while one is rolled: a list, or `whsec_a,whsec_b`.
    #[serde(default, deserialize_with = "secret_list")]
    pub webhook_secrets: Vec<SecretString>,
    /// A delivery signed longer ago than this (or this far ahead) is refused.
    pub webhook_tolerance_secs: u64,
    /// The largest webhook body read (413 beyond).
    pub webhook_max_bytes: usize,
    pub connect_timeout_secs: u64,
    /// One API request, from sending it to the whole answer.
    pub timeout_secs: u64,
    /// A request that timed out, could not connect, or was told to wait (409 key in use, 429) is sent again with
    /// the same `Idempotency-Key` up to this many times.
    pub max_retries: u32,
}

impl StripeSettings {
    /// Whether Stripe is configured (a secret key is set).
    pub fn enabled(&self) -> bool {
        self.secret_key.as_ref().is_some_and(|k| !k.expose_secret().trim().is_empty())
    }

    /// Every signing secret a delivery may be signed with: `webhook_secret`, then `webhook_secrets`.
    pub fn signing_secrets(&self) -> Vec<&SecretString> {
        self.webhook_secret
            .iter()
            .chain(&self.webhook_secrets)
            .filter(|s| !s.expose_secret().trim().is_empty())
            .collect()
    }
}

/// Accepts `["a", "b"]` (TOML) or `"a,b"` (an environment variable).
fn text_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let items = match Raw::deserialize(d)? {
        Raw::List(items) => items,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

/// Accepts a TOML list of secrets or `a,b` (an environment variable or a secret file).
fn secret_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(text_list(d)?.into_iter().map(SecretString::from).collect())
}

/// Zarinpal (v4): on while `merchant_id` is set. Customers pay on `{startpay_url}/pg/StartPay/{authority}`
/// (`startpay_url` defaults to `api_url`); requests give up after `timeout_secs` and are tried `retries` more
/// times when Zarinpal could not be reached or answered 5xx.
#[derive(Debug, Clone, Deserialize)]
pub struct ZarinpalSettings {
    pub api_url: Url,
    #[serde(default)]
    pub startpay_url: Option<Url>,
    pub merchant_id: Option<SecretString>,
    pub connect_timeout_secs: u64,
    pub timeout_secs: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    /// Signs admin access tokens (HS256); required in production. Elsewhere a random one is made at start (tokens
    /// then last until a restart and do not cross instances).
    pub jwt_secret: Option<SecretString>,
    /// How long an access token from `POST /api/v1/auth/login` (or a refresh) is good for.
    pub access_token_secs: u64,
    /// How long a refresh token is good for (each use gives a new one).
    pub refresh_token_days: u32,
    /// Sign-in attempts allowed per client IP, and per account, in `login_window_secs`.
    pub login_max_per_ip: u32,
    pub login_max_per_account: u32,
    pub login_window_secs: u64,
    /// Per-client-IP rate limit of `/api/v1` (sustained rate and burst).
    pub api_rate_limit_per_second: f64,
    pub api_rate_limit_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    pub workers: usize,
    pub poll_interval_ms: u64,
    /// A running job's claim; its worker renews it every third of this while the job runs, so the job of a
    /// dead instance is taken over within this long.
    pub lease_secs: u64,
    /// The longest one attempt may run; then it is stopped and retried.
    pub timeout_secs: u64,
    pub max_attempts: i32,
    pub backoff_base_secs: u64,
    pub backoff_max_secs: u64,
    /// Finished jobs older than this are deleted by the clean-up sweep.
    pub keep_done_days: u32,
    /// Once-only job keys (a notice per event) are kept this long: a repeat within it is ignored.
    pub keep_keys_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerSettings {
    pub enabled: bool,
    /// Six-field cron expressions (with seconds) per sweep name.
    pub sweeps: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogSettings {
    pub path: PathBuf,
    /// Seed the catalogue at start when no plans exist yet.
    pub seed_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShopSettings {
    /// Language for customers whose Telegram language we do not speak.
    pub default_language: crate::domain::Language,
    /// The currency prices are shown and charged in, per customer language.
    pub currency: HashMap<crate::domain::Language, crate::domain::Currency>,
    /// Shown under Help (a @username or a URL).
    pub support_contact: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TrialSettings {
    pub enabled: bool,
    pub duration_days: i32,
    pub data_gb: i64,
    /// The trial's data in MB instead (for caps under 1 GB); wins over `data_gb` when set.
    #[serde(default)]
    pub data_mb: Option<i64>,
    pub devices: i32,
    /// Trial requests one customer may make per window (the trial itself is once per account for life).
    pub user_max: u32,
    pub user_window_secs: u64,
    /// Trials granted across all customers per window, so a wave of new accounts cannot drain a node.
    pub global_max: u32,
    pub global_window_secs: u64,
}

impl TrialSettings {
    /// The trial's data cap: `data_mb` when set, else `data_gb`.
    pub fn data_cap(&self) -> Result<crate::domain::DataCap, crate::domain::plan::InvalidDataCap> {
        match self.data_mb {
            Some(mb) => crate::domain::DataCap::from_mb(mb),
            None => crate::domain::DataCap::from_gb(self.data_gb),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    pub card: CardSettings,
    /// Minutes a customer has to finish an online payment (Stripe's session expiry, at least 30; Zarinpal
    /// payments not verified by then are reconciled, then expired).
    pub online_expiry_mins: u32,
}

/// Card-to-card transfers: the cards shown to customers (`number`/`holder`/`bank`, and any in `cards`, in turn),
/// how long a customer has to pay, how receipts are reviewed and when an overdue review is accepted on its own.
/// Card payments are off while no card has a number.
#[derive(Debug, Clone, Deserialize)]
pub struct CardSettings {
    pub number: String,
    pub holder: String,
    pub bank: String,
    /// The order currencies the main card takes (empty: any).
    #[serde(default)]
    pub currencies: Vec<String>,
    /// More cards; orders are given the cards in turn.
    #[serde(default)]
    pub cards: Vec<Card>,
    /// Minutes a customer has to pay and send the receipt; the order expires after them.
    pub deadline_mins: i32,
    /// Minutes a review may take; after them an overdue review is accepted automatically (when `auto_accept`).
    pub review_mins: i32,
    pub auto_accept: bool,
    /// Seconds the customer's notice of an automatic acceptance waits, so that an admin's Reject racing the sweep
    /// leaves them with one message (the rejection) rather than "accepted" and then "taken back".
    pub auto_accept_notice_secs: u64,
    /// Per currency (`USD = "20"`, in major units): overdue reviews above it are never accepted automatically; a
    /// currency not listed is never auto-accepted.
    #[serde(default)]
    pub auto_accept_max: HashMap<String, rust_decimal::Decimal>,
    /// Receipts one customer may send per window.
    pub receipt_max: u32,
    pub receipt_window_secs: u64,
    /// The largest receipt file downloaded (Telegram allows bots 20 MB).
    pub receipt_max_bytes: u64,
    /// An admin group chat that receives the reviews instead of each admin's private chat.
    #[serde(default)]
    pub review_chat_id: Option<i64>,
}

/// One card customers pay to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Card {
    pub number: String,
    pub holder: String,
    pub bank: String,
    /// The order currencies it takes (`["IRR"]`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub currencies: Vec<String>,
}

impl Card {
    pub fn takes(&self, currency: crate::domain::Currency) -> bool {
        self.currencies.is_empty() || self.currencies.iter().any(|c| c.eq_ignore_ascii_case(currency.as_str()))
    }
}

impl CardSettings {
    /// Every card with a number, the main one first.
    pub fn all(&self) -> Vec<Card> {
        let main = Card {
            number: self.number.clone(),
            holder: self.holder.clone(),
            bank: self.bank.clone(),
            currencies: self.currencies.clone(),
        };
        std::iter::once(main).chain(self.cards.iter().cloned()).filter(|c| !c.number.trim().is_empty()).collect()
    }

    /// The highest amount auto-accepted in `currency` (minor units), if any.
    pub fn auto_accept_ceiling(&self, currency: crate::domain::Currency) -> Option<i64> {
        let major = self.auto_accept_max.get(currency.as_str())?;
        crate::domain::Money::from_major(*major, currency).ok().map(|m| m.minor())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProvisionSettings {
    /// The SSH private key (OpenSSH text) used to log in to nodes; or `ssh_key_path`.
    pub ssh_key: Option<SecretString>,
    pub ssh_key_path: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// Limit for any single operation on a node (command, API call).
    pub op_timeout_secs: u64,
    pub keepalive_secs: u64,
    /// A removed client whose counter still grows forces a core restart, at most once per this interval.
    pub hard_cut_min_interval_secs: u64,
    /// The same for a client over its data cap that is still moving data (each second costs the shop its rate).
    pub cap_cut_min_interval_secs: u64,
    /// Traffic counted within this long after removal is in-flight data, not a live session.
    pub removal_grace_secs: u64,
    /// From this share of its cap on, a subscription's node is metered at least every `near_cap_meter_ms`.
    pub near_cap_percent: u8,
    pub near_cap_meter_ms: u64,
    /// The shortest gap between two metering passes of one node (a fast client near its cap).
    pub meter_min_interval_ms: u64,
    /// Shown as the profile title in subscription apps.
    pub shop_name: String,
    /// How often subscription apps should refresh the feed.
    pub feed_update_hours: u32,
    /// Admins are alerted (once per certificate) when a node's TLS certificate ends within this many days.
    #[serde(default = "default_certificate_alert_days")]
    pub certificate_alert_days: u32,
    /// Private destinations customers may reach through nodes anyway (`127.0.0.1:8080`, `10.1.0.0/16`): for
    /// tests and labs only. Everything private is blocked by default (see `provision::isolation`).
    #[serde(default, deserialize_with = "destination_list")]
    pub allow_private_destinations: Vec<crate::provision::isolation::AllowedDestination>,
}

impl ProvisionSettings {
    /// How closely metering watches subscriptions near their cap.
    pub fn meter_near_cap(&self) -> crate::domain::traffic::NearCap {
        crate::domain::traffic::NearCap {
            percent: self.near_cap_percent,
            interval: std::time::Duration::from_millis(self.near_cap_meter_ms),
            min_interval: std::time::Duration::from_millis(self.meter_min_interval_ms),
        }
    }
}

fn default_certificate_alert_days() -> u32 {
    14
}

/// Accepts a TOML list or `a,b` (an environment variable) of destinations.
fn destination_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<crate::provision::isolation::AllowedDestination>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let items = match Raw::deserialize(d)? {
        Raw::List(items) => items,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e: String| serde::de::Error::custom(format!("provision.allow_private_destinations: {e}")))
        })
        .collect()
}

/// Secrets that may come from `VPNSHOP__SECTION__KEY_FILE`.
const FILE_SECRETS: &[&str] = &[
    "database.url",
    "redis.url",
    "sentry.dsn",
    "otel.headers",
    "telegram.token",
    "telegram.webhook_secret",
    "stripe.secret_key",
    "stripe.webhook_secret",
    "stripe.webhook_secrets",
    "zarinpal.merchant_id",
    "security.jwt_secret",
    "provision.ssh_key",
];

/// Conventional variables and the keys they set (a `VPNSHOP__…` variable still wins).
const CONVENTIONAL: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("TELEGRAM_BOT_TOKEN", "telegram.token"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel.endpoint"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "otel.headers"),
    ("OTEL_SERVICE_NAME", "otel.service_name"),
];

impl Settings {
    /// Loads from `VPNSHOP_CONFIG_DIR` (default `./config`) and the process environment.
    pub fn load() -> anyhow::Result<Settings> {
        let dir = std::env::var_os("VPNSHOP_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| "config".into());
        Settings::load_from(&dir, std::env::vars().collect())
    }

    /// Loads from a config directory and an explicit environment (tests pass their own).
    pub fn load_from(dir: &Path, env: HashMap<String, String>) -> anyhow::Result<Settings> {
        let environment = match env.get("VPNSHOP_ENV").filter(|v| !v.is_empty()) {
            Some(raw) => Environment::parse(raw)?,
            None => Environment::Development,
        };
        let default_file = dir.join("default.toml");
        if !default_file.exists() {
            bail!(
                "settings file {} not found (set VPNSHOP_CONFIG_DIR to the config directory)",
                default_file.display()
            );
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::from(default_file))
            .add_source(config::File::from(dir.join(format!("{}.toml", environment.as_str()))).required(false));
        // The conventional variables are a source of their own, below the VPNSHOP__ ones.
        let conventional: config::Map<String, String> = CONVENTIONAL
            .iter()
            .filter_map(|(var, key)| {
                let value = env.get(*var).filter(|v| !v.is_empty())?;
                Some((key.replace('.', "__").to_uppercase(), value.clone()))
            })
            .collect();
        builder = builder.add_source(config::Environment::default().separator("__").source(Some(conventional)));
        let prefixed: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("VPNSHOP__") && !k.ends_with("_FILE"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("VPNSHOP").prefix_separator("__").separator("__").source(Some(prefixed)),
        );
        for key in FILE_SECRETS {
            let var = format!("VPNSHOP__{}_FILE", key.replace('.', "__").to_uppercase());
            if let Some(path) = env.get(&var).filter(|v| !v.is_empty()) {
                let secret = std::fs::read_to_string(path).with_context(|| format!("reading {var}={path}"))?;
                builder = builder.set_override(*key, secret.trim_end_matches(['\n', '\r']))?;
            }
        }
        let mut settings: Settings =
            builder.build().and_then(|c| c.try_deserialize()).map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        settings.env = environment;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types cannot; every message names the key to fix.
    fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let set = |s: &Option<SecretString>| s.as_ref().is_some_and(|v| !v.expose_secret().trim().is_empty());
        if !set(&self.database.url) {
            problems.push(
                "missing required setting `database.url` (set DATABASE_URL or VPNSHOP__DATABASE__URL)".to_owned(),
            );
        }
        let public = self.http.public_url.is_some() || self.telegram.public_url.is_some();
        if self.env == Environment::Production && !public && set(&self.zarinpal.merchant_id) {
            problems.push(
                "Zarinpal sends customers back to `{public URL}/pay/zarinpal/callback`: set `http.public_url` \
                 (VPNSHOP__HTTP__PUBLIC_URL) to the shop's public address"
                    .to_owned(),
            );
        }
        let bot_link = self.telegram.bot_username.as_deref().is_some_and(|u| !u.trim().is_empty());
        if self.env == Environment::Production && !public && !bot_link && self.stripe.enabled() {
            problems.push(
                "Stripe sends customers back after paying: set `telegram.bot_username` (back to the bot) or \
                 `http.public_url`"
                    .to_owned(),
            );
        }
        if self.env == Environment::Production {
            match &self.security.jwt_secret {
                Some(s) if s.expose_secret().len() >= 32 => {}
                Some(_) => problems.push("`security.jwt_secret` must be at least 32 characters".to_owned()),
                None => problems.push(
                    "missing required secret `security.jwt_secret` in production \
                     (set VPNSHOP__SECURITY__JWT_SECRET or VPNSHOP__SECURITY__JWT_SECRET_FILE)"
                        .to_owned(),
                ),
            }
        }
        if self.env == Environment::Production && !self.provision.allow_private_destinations.is_empty() {
            problems.push(
                "`provision.allow_private_destinations` lets customers into private networks: for tests and labs, \
                 not production"
                    .to_owned(),
            );
        }
        if self.telegram.public_url.is_some() && !set(&self.telegram.webhook_secret) {
            problems.push(
                "`telegram.public_url` is set, so `telegram.webhook_secret` is required \
                 (set VPNSHOP__TELEGRAM__WEBHOOK_SECRET)"
                    .to_owned(),
            );
        }
        if let Some(secret) = &self.telegram.webhook_secret {
            let s = secret.expose_secret();
            if s.is_empty() || s.len() > 256 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                problems
                    .push("`telegram.webhook_secret` must be 1-256 characters of A-Z, a-z, 0-9, _ and -".to_owned());
            }
        }
        self.validate_stripe(&mut problems);
        let zarinpal = &self.zarinpal;
        if let Some(id) = zarinpal.merchant_id.as_ref().filter(|_| set(&zarinpal.merchant_id)) {
            if uuid::Uuid::parse_str(id.expose_secret().trim()).is_err() {
                problems.push("`zarinpal.merchant_id` must be the merchant UUID Zarinpal gave you".to_owned());
            }
            // a customer's tap waits for every attempt (and the pauses between them) within one update's handler
            let worst = (zarinpal.timeout_secs + 1).saturating_mul(u64::from(zarinpal.retries) + 1);
            if worst >= self.telegram.handler_timeout_secs {
                problems.push(format!(
                    "`zarinpal.timeout_secs` + 1 times (`zarinpal.retries` + 1) is {worst} s: it must stay below \
                     `telegram.handler_timeout_secs` ({} s)",
                    self.telegram.handler_timeout_secs
                ));
            }
            // the callback verifies within one HTTP request: cut off mid-verify, only its follow-up job settles it
            if worst >= self.http.request_timeout_secs {
                problems.push(format!(
                    "`zarinpal.timeout_secs` + 1 times (`zarinpal.retries` + 1) is {worst} s: it must stay below \
                     `http.request_timeout_secs` ({} s)",
                    self.http.request_timeout_secs
                ));
            }
        }
        if zarinpal.connect_timeout_secs == 0 || zarinpal.timeout_secs == 0 || zarinpal.retries > 5 {
            problems.push(
                "`zarinpal.connect_timeout_secs` and `zarinpal.timeout_secs` must be at least 1, `zarinpal.retries` \
                 at most 5"
                    .to_owned(),
            );
        }
        if !(1..=100).contains(&self.telegram.max_connections) {
            problems.push("`telegram.max_connections` must be between 1 and 100".to_owned());
        }
        let limits = &self.telegram.limits;
        if limits.per_second == 0 || limits.edit_burst == 0 || self.telegram.handler_timeout_secs == 0 {
            problems.push(
                "`telegram.limits.per_second`, `telegram.limits.edit_burst` and `telegram.handler_timeout_secs` \
                 must be at least 1"
                    .to_owned(),
            );
        }
        let broadcast = &self.telegram.broadcast;
        if broadcast.per_second == 0 || broadcast.per_second > limits.per_second {
            problems.push("`telegram.broadcast.per_second` must be between 1 and `telegram.limits.per_second`".into());
        }
        if !(1..=100).contains(&broadcast.batch) || broadcast.claim_secs < 5 {
            problems.push(
                "`telegram.broadcast.batch` must be between 1 and 100 and `telegram.broadcast.claim_secs` at least 5"
                    .into(),
            );
        }
        if self.telegram.intake_queue == 0 || self.telegram.handlers == 0 {
            problems.push("`telegram.intake_queue` and `telegram.handlers` must be at least 1".to_owned());
        }
        let card = &self.payments.card;
        if card.deadline_mins < 1 || card.review_mins < 1 || card.receipt_max == 0 || card.receipt_window_secs == 0 {
            problems.push(
                "`payments.card.deadline_mins`, `review_mins`, `receipt_max` and `receipt_window_secs` must be at least 1"
                    .to_owned(),
            );
        }
        for (currency, max) in &card.auto_accept_max {
            match currency.parse::<crate::domain::Currency>() {
                Ok(c) if crate::domain::Money::from_major(*max, c).is_ok() || max.is_zero() => {}
                _ => problems.push(format!(
                    "`payments.card.auto_accept_max.{currency}`: a known currency (USD, EUR, IRR) and an amount in it"
                )),
            }
        }
        if self.jobs.workers == 0 {
            problems.push("`jobs.workers` must be at least 1".to_owned());
        }
        if let Some(name) = &self.instance.name
            && (name.is_empty() || name.len() > 100 || name.contains('/'))
        {
            problems.push("`instance.name` must be 1-100 characters without '/'".to_owned());
        }
        if self.jobs.max_attempts < 1 {
            problems.push("`jobs.max_attempts` must be at least 1".to_owned());
        }
        if self.jobs.lease_secs < 3 || self.jobs.poll_interval_ms == 0 || self.jobs.timeout_secs == 0 {
            problems.push(
                "`jobs.lease_secs` must be at least 3, and `jobs.poll_interval_ms` and `jobs.timeout_secs` positive"
                    .to_owned(),
            );
        }
        if self.provision.ssh_key.is_some() && self.provision.ssh_key_path.is_some() {
            problems.push("set only one of `provision.ssh_key` and `provision.ssh_key_path`".to_owned());
        }
        if !(1..=100).contains(&self.provision.near_cap_percent) {
            problems.push("`provision.near_cap_percent` must be between 1 and 100".to_owned());
        }
        if self.provision.meter_min_interval_ms < 100
            || self.provision.near_cap_meter_ms < self.provision.meter_min_interval_ms
        {
            problems.push(
                "`provision.meter_min_interval_ms` must be at least 100 and `provision.near_cap_meter_ms` at least that"
                    .to_owned(),
            );
        }
        if self.provision.connect_timeout_secs == 0 || self.provision.op_timeout_secs == 0 {
            problems
                .push("`provision.connect_timeout_secs` and `provision.op_timeout_secs` must be positive".to_owned());
        }
        if self.trial.duration_days < 1 || self.trial.data_gb < 1 || self.trial.devices < 1 {
            problems.push("`trial.duration_days`, `trial.data_gb` and `trial.devices` must be at least 1".to_owned());
        }
        if self.trial.data_mb.is_some() && self.trial.data_cap().is_err() {
            problems.push("`trial.data_mb` must be a positive number of MB".to_owned());
        }
        if self.trial.user_window_secs == 0 || self.trial.global_window_secs == 0 {
            problems.push("`trial.user_window_secs` and `trial.global_window_secs` must be positive".to_owned());
        }
        for lang in crate::domain::Language::ALL {
            if !self.shop.currency.contains_key(lang) {
                problems.push(format!("`shop.currency.{lang}` is missing (USD, EUR or IRR)"));
            }
        }
        if self.metrics.collect_interval_secs == 0
            || self.metrics.collect_timeout_ms == 0
            || self.metrics.collect_timeout_ms >= self.metrics.collect_interval_secs.saturating_mul(1000)
        {
            problems.push(
                "`metrics.collect_interval_secs` and `metrics.collect_timeout_ms` must be at least 1, the timeout \
                 shorter than the interval"
                    .to_owned(),
            );
        }
        if self.database.max_connections == 0 {
            problems.push("`database.max_connections` must be at least 1".to_owned());
        }
        if self.database.public_connections == 0 || self.database.public_connections >= self.database.max_connections {
            problems.push(
                "`database.public_connections` must be at least 1 and less than `database.max_connections`".to_owned(),
            );
        }
        self.validate_http(&mut problems);
        if !["auto", "json", "pretty"].contains(&self.log.format.as_str()) {
            problems.push(format!("`log.format` must be auto, json or pretty, got {:?}", self.log.format));
        }
        if !(0.0..=1.0).contains(&self.sentry.traces_sample_rate) {
            problems.push("`sentry.traces_sample_rate` must be between 0 and 1".to_owned());
        }
        self.validate_otel(&mut problems);
        for (name, expr) in &self.scheduler.sweeps {
            if expr.split_whitespace().count() != 6 {
                problems.push(format!(
                    "`scheduler.sweeps.{name}` must be a 6-field cron expression (with seconds), got {expr:?}"
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { bail!("invalid settings:\n  - {}", problems.join("\n  - ")) }
    }

    /// OpenTelemetry export (see `OtelSettings`).
    fn validate_otel(&self, problems: &mut Vec<String>) {
        let o = &self.otel;
        if o.endpoint.as_ref().is_some_and(|u| !matches!(u.scheme(), "http" | "https") || u.host().is_none()) {
            problems.push("`otel.endpoint` must be an http:// or https:// URL (the collector's base)".to_owned());
        }
        if o.protocol != "http/protobuf" {
            problems.push(format!("`otel.protocol` must be http/protobuf, got {:?}", o.protocol));
        }
        if o.service_name.trim().is_empty() || o.timeout_secs == 0 || !(0.0..=1.0).contains(&o.sample_ratio) {
            problems.push(
                "`otel.service_name` must not be empty, `otel.timeout_secs` at least 1 and `otel.sample_ratio` \
                 between 0 and 1"
                    .to_owned(),
            );
        }
        if let Err(e) = o.header_pairs() {
            problems.push(format!("`otel.headers`: {e} (name=value pairs separated by commas)"));
        }
    }

    /// The listener's limits (see `HttpSettings`).
    fn validate_http(&self, problems: &mut Vec<String>) {
        let h = &self.http;
        if h.request_timeout_secs == 0 || h.header_read_timeout_secs == 0 || h.idle_timeout_secs == 0 {
            problems.push(
                "`http.request_timeout_secs`, `http.header_read_timeout_secs` and `http.idle_timeout_secs` must be \
                 positive"
                    .to_owned(),
            );
        }
        if h.max_connections == 0 {
            problems.push("`http.max_connections` must be at least 1".to_owned());
        }
        if h.max_connections_per_ip <= usize::from(self.telegram.max_connections) {
            problems.push(
                "`http.max_connections_per_ip` must be above `telegram.max_connections` (Telegram delivers on that \
                 many connections at once)"
                    .to_owned(),
            );
        }
        if h.max_body_bytes == 0 {
            problems.push("`http.max_body_bytes` must be at least 1".to_owned());
        }
        if !(h.rate_limit_per_second.is_finite() && h.rate_limit_per_second > 0.0) || h.rate_limit_burst == 0 {
            problems.push("`http.rate_limit_per_second` and `http.rate_limit_burst` must be positive".to_owned());
        }
        if self.telegram.max_update_bytes < 16 * 1024 {
            problems.push(
                "`telegram.max_update_bytes` must be at least 16384 (Telegram's updates reach many KiB)".to_owned(),
            );
        }
    }

    /// Stripe's keys, timeouts and the checkout window it allows.
    fn validate_stripe(&self, problems: &mut Vec<String>) {
        let s = &self.stripe;
        if s.connect_timeout_secs == 0 || s.timeout_secs == 0 || s.webhook_tolerance_secs == 0 {
            problems.push(
                "`stripe.connect_timeout_secs`, `stripe.timeout_secs` and `stripe.webhook_tolerance_secs` must be \
                 positive"
                    .to_owned(),
            );
        }
        if s.webhook_max_bytes < 16 * 1024 || s.max_retries > 5 {
            problems.push(
                "`stripe.webhook_max_bytes` must be at least 16384 and `stripe.max_retries` at most 5".to_owned(),
            );
        }
        if !s.enabled() {
            return;
        }
        if s.signing_secrets().is_empty() {
            problems.push(
                "`stripe.secret_key` is set, so `stripe.webhook_secret` (or `stripe.webhook_secrets`) is required"
                    .to_owned(),
            );
        }
        // a customer's tap waits for every attempt (and the pauses between them) within one update's handler
        let worst = (s.timeout_secs + 1).saturating_mul(u64::from(s.max_retries) + 1);
        if worst >= self.telegram.handler_timeout_secs {
            problems.push(format!(
                "`stripe.timeout_secs` + 1 times (`stripe.max_retries` + 1) is {worst} s: it must stay below \
                 `telegram.handler_timeout_secs` ({} s)",
                self.telegram.handler_timeout_secs
            ));
        }
        if !(30..=1440).contains(&self.payments.online_expiry_mins) {
            problems.push(
                "`payments.online_expiry_mins` must be 30 to 1440 with Stripe (a Checkout Session expires within \
                 30 minutes to 24 hours)"
                    .to_owned(),
            );
        }
    }

    /// Where customers reach us: `http.public_url`, else `telegram.public_url`, else the listener's address.
    pub fn public_base_url(&self) -> Url {
        self.http
            .public_url
            .clone()
            .or_else(|| self.telegram.public_url.clone())
            .or_else(|| Url::parse(&format!("http://127.0.0.1:{}/", self.http.addr.port())).ok())
            .unwrap_or_else(|| Url::parse("http://127.0.0.1/").expect("static URL parses"))
    }

    /// The database URL (validated to be present).
    pub fn database_url(&self) -> &str {
        self.database.url.as_ref().map(|s| s.expose_secret()).unwrap_or_default()
    }

    pub fn json_logs(&self) -> bool {
        match self.log.format.as_str() {
            "json" => true,
            "pretty" => false,
            _ => self.env == Environment::Production,
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
