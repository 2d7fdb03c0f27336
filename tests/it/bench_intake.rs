//! Telegram intake benchmark — not a test: `#[ignore]`d, asserts correctness only (every request got a 2xx;
//! every update we sent is stored exactly once in `telegram_updates`, or counted by teloxide's listener),
//! never timings. Run with `scripts/bench bench_intake` (release build, one at a time); results go to stdout
//! and, when `$VPNSHOP_BENCH_OUT` is set, to `$VPNSHOP_BENCH_OUT/intake.md`. Reading: docs/benchmarks.md.
//!
//! `POST /telegram/webhook` with a realistic `/start` message update (a unique `update_id` each, 10,000
//! distinct users) and the secret header, at 100 keep-alive connections, against these targets in the same
//! run, one after the other (the order is reversed every other round):
//! - **teloxide**: teloxide 0.17's own webhook listener (`axum_no_setup`) served by axum, its update stream
//!   drained by a task that counts the updates: the in-memory baseline (200 before anything is stored);
//! - **ours, intake only**: our real router and the real `Intake` writers (as `app::run` starts them) on a
//!   production-sized pool, without the inbox handlers, job workers or bot start-up — nothing else touches the
//!   database. Nothing in the product is switched off: this wiring just does not start those tasks;
//! - **ours, whole app**: the whole app (`spawn_app_with`) with its bot on the fake Telegram: the inbox
//!   handlers claim and answer the stored updates (replies kept within Telegram's limits) while the
//!   webhook is loaded;
//! - a diagnostic, **ours, intake only with `synchronous_commit=off`** on the writers' connections (set by the
//!   benchmark, not a product setting): commits stop waiting for the WAL flush, which shows what bounds the
//!   durable intake — the disk or the CPU.
//!
//! `bench_intake_duplicates` runs the Rust generator with every update sent twice, by two connections at about
//! the same time (Telegram re-delivers when answers are slow): writers then store overlapping ids at once, which
//! deadlocked before batches were sorted by `update_id` (a deadlock fails its whole batch with 503s, which this
//! benchmark counts as failures).
//!
//! `bench_intake_insert_size` times one `insert_many` by rows per statement, sequentially: the statement-size
//! cliff that sqlx-core 0.9.0 as released has without TCP_NODELAY, gone with vendor/sqlx-core (vendor/README.md).
//!
//! Two load generators: `bench_intake_webhook` uses a small Rust one (raw HTTP/1.1 on 100 tokio TCP
//! connections, each sending its next request when the previous answer is in; a fixed warm-up then a fixed
//! measured window; latency = request written → response read); `bench_intake_wrk` uses `wrk` with a Lua
//! script numbering the updates, as a second opinion (skipped when `wrk` is missing, unless the run requires
//! every tool).
//!
//! Knobs: VPNSHOP_BENCH_INTAKE_SECS (10), VPNSHOP_BENCH_INTAKE_WARMUP_SECS (2), VPNSHOP_BENCH_INTAKE_ROUNDS
//! (3), VPNSHOP_BENCH_INTAKE_CONNECTIONS (100), VPNSHOP_BENCH_INTAKE_TARGETS (`teloxide,intake,nosync,app`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use teloxide::update_listeners::AsUpdateStream;
use teloxide::update_listeners::webhooks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use vpnshop::app::{self, AppState};
// the intake-only target starts as many intake writers as `app::run` does
use vpnshop::bot::intake::WRITERS;

use crate::bot::{SECRET, bot_settings};
use crate::helpers::{TestApp, multi_thread, spawn_app_with, test_settings, tools_required};
use crate::support::{FakeTelegram, TgUser, command_update};

mod replies;

const PATH: &str = "/telegram/webhook";
/// Distinct users (and so chats) the updates come from.
const USERS: u64 = 10_000;
const FIRST_USER: u64 = 1_000_000;
/// Markers in the update template, replaced per request (the update id is also the message id).
const ID_MARK: u32 = 4_000_000_001;
const USER_MARK: i64 = 8_888_888_888_888;

// ---------------------------------------------------------------------------------------------- harness

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Config {
    connections: usize,
    warmup: Duration,
    measure: Duration,
    rounds: usize,
    /// Every update is sent twice, by two connections at about the same time (Telegram re-delivering while
    /// our answers are slow): the Rust generator only.
    duplicates: bool,
}

impl Config {
    fn from_env() -> Config {
        Config {
            connections: env_u64("VPNSHOP_BENCH_INTAKE_CONNECTIONS", 100) as usize,
            warmup: Duration::from_secs(env_u64("VPNSHOP_BENCH_INTAKE_WARMUP_SECS", 2)),
            measure: Duration::from_secs(env_u64("VPNSHOP_BENCH_INTAKE_SECS", 10)),
            rounds: env_u64("VPNSHOP_BENCH_INTAKE_ROUNDS", 3).max(1) as usize,
            duplicates: false,
        }
    }
}

/// The app's pool as configured in production (`database.max_connections = 20`), on the test's database.
async fn app_pool(connect: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect.clone())
        .await
        .expect("bench pool")
}

/// The update every request carries: a `/start` command in a user's private chat, exactly as Telegram posts
/// it, with markers where the update id and the user id go.
fn update_template() -> String {
    let update = command_update(ID_MARK, &TgUser::new(USER_MARK, "Ana"), "/start");
    let text = update.to_string();
    assert_eq!(text.matches(&ID_MARK.to_string()).count(), 2, "update_id and message_id: {text}");
    assert_eq!(text.matches(&USER_MARK.to_string()).count(), 2, "from.id and chat.id: {text}");
    text
}

fn user_of(update_id: u64) -> u64 {
    FIRST_USER + update_id % USERS
}

// ------------------------------------------------------------------------------------------------ targets

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Teloxide,
    IntakeOnly,
    /// Diagnostic: the same with `synchronous_commit = off` on the writers' connections (a commit does not wait
    /// for the WAL flush, so a Postgres crash could lose the last ~0.6 s of updates): what the intake costs
    /// when the disk is out of the picture.
    IntakeNoFlush,
    WholeApp,
}

const KINDS: [(&str, Kind); 4] = [
    ("teloxide", Kind::Teloxide),
    ("intake", Kind::IntakeOnly),
    ("nosync", Kind::IntakeNoFlush),
    ("app", Kind::WholeApp),
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Teloxide => "teloxide 0.17 `axum_no_setup` (in memory)",
            Kind::IntakeOnly => "ours: durable intake only (no handlers)",
            Kind::IntakeNoFlush => "diagnostic: ours, intake only, `synchronous_commit=off`",
            Kind::WholeApp => "ours: whole app (inbox handlers answering)",
        }
    }
}

/// A server under test, on this runtime.
enum Target {
    Teloxide {
        addr: SocketAddr,
        received: Arc<AtomicU64>,
        cancel: CancellationToken,
        server: tokio::task::JoinHandle<()>,
        drain: tokio::task::JoinHandle<()>,
    },
    IntakeOnly {
        addr: SocketAddr,
        cancel: CancellationToken,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        /// The diagnostic's own pool (closed at the end).
        own_pool: Option<PgPool>,
        _tg: FakeTelegram,
    },
    WholeApp {
        app: TestApp,
        _tg: FakeTelegram,
    },
}

impl Target {
    async fn start(kind: Kind, pool: &PgPool, connect: &PgConnectOptions) -> Target {
        match kind {
            Kind::Teloxide => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let url = format!("https://shop.example{PATH}").parse().unwrap();
                let options = webhooks::Options::new(addr, url).secret_token(SECRET.to_owned());
                let (mut updates, _stop, router) = webhooks::axum_no_setup(options);
                let received = Arc::new(AtomicU64::new(0));
                let count = received.clone();
                // consume the updates as fast as they come, like a dispatcher that does nothing with them
                let drain = tokio::spawn(async move {
                    let stream = updates.as_stream();
                    futures::pin_mut!(stream);
                    while let Some(update) = stream.next().await {
                        if update.is_ok() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                let cancel = CancellationToken::new();
                let stop = cancel.clone();
                let server = tokio::spawn(async move {
                    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await.unwrap()
                });
                Target::Teloxide { addr, received, cancel, server, drain }
            }
            Kind::IntakeOnly | Kind::IntakeNoFlush => {
                let own_pool = (kind == Kind::IntakeNoFlush).then(|| {
                    PgPoolOptions::new()
                        .max_connections(20)
                        .connect_lazy_with(connect.clone().options([("synchronous_commit", "off")]))
                });
                let pool = own_pool.as_ref().unwrap_or(pool);
                let tg = FakeTelegram::start().await;
                let mut settings = test_settings();
                bot_settings(&mut settings, &tg);
                let state = AppState::with_pool(settings, pool.clone()).expect("build state");
                app::prepare(&state).await.expect("prepare app");
                // the app records its metrics and keeps its histograms bounded (it serves /metrics in production)
                let metrics = vpnshop::metrics::handle();
                let telegram = state.telegram.clone().expect("the bot is configured");
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let cancel = CancellationToken::new();
                let mut tasks = Vec::new();
                // what `app::run` starts for the webhook: the HTTP server, metrics upkeep and the intake writers
                let router = vpnshop::http::router(state.clone());
                let limits = vpnshop::http::Limits::from_settings(&state.settings.http);
                let stop = cancel.clone();
                tasks.push(tokio::spawn(
                    async move { vpnshop::http::serve(listener, router, limits, stop).await.unwrap() },
                ));
                tasks.push(tokio::spawn(vpnshop::metrics::upkeep(metrics, cancel.clone())));
                for _ in 0..WRITERS {
                    tasks.push(tokio::spawn(telegram.intake.clone().write(pool.clone(), cancel.clone())));
                }
                Target::IntakeOnly { addr, cancel, tasks, own_pool, _tg: tg }
            }
            Kind::WholeApp => {
                let tg = FakeTelegram::start().await;
                // its own pool: the app closes its pool when it stops
                let app = spawn_app_with(app_pool(connect).await, |s| {
                    bot_settings(s, &tg);
                    // config/test.toml polls jobs every 50 ms; production (config/default.toml) every 500 ms
                    s.jobs.poll_interval_ms = 500;
                })
                .await;
                // the bot is connected (getMe, setWebhook) before the load starts
                tg.wait_for("setWebhook", 1, Duration::from_secs(10)).await;
                Target::WholeApp { app, _tg: tg }
            }
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::Teloxide { addr, .. } | Target::IntakeOnly { addr, .. } => *addr,
            Target::WholeApp { app, .. } => app.addr,
        }
    }

    /// Stops the target (the load is over and its connections closed); for teloxide, returns how many
    /// updates its listener handed out (its stream ends when the server is gone).
    async fn stop(self) -> Option<u64> {
        match self {
            Target::Teloxide { received, cancel, server, drain, .. } => {
                cancel.cancel();
                server.await.expect("teloxide's server");
                tokio::time::timeout(Duration::from_secs(10), drain)
                    .await
                    .expect("the update stream ends with the server")
                    .expect("drain task");
                Some(received.load(Ordering::Relaxed))
            }
            Target::IntakeOnly { cancel, tasks, own_pool, .. } => {
                cancel.cancel();
                for task in tasks {
                    task.await.expect("intake task");
                }
                if let Some(pool) = own_pool {
                    pool.close().await;
                }
                None
            }
            Target::WholeApp { app, .. } => {
                app.stop().await.expect("app stops");
                None
            }
        }
    }
}

/// Checks what our target stored: between `at_least` and `at_most` updates, all with ids in `ids` (the primary
/// key makes each one stored once; with `at_least == at_most == ids.len()` every id sent is there), then
/// empties the inbox for the next target. Returns the mean number of rows per `INSERT` (the rows of one
/// statement share `received_at`, the transaction's start time).
async fn check_stored_and_clear(pool: &PgPool, ids: std::ops::Range<u64>, at_least: u64, at_most: u64) -> f64 {
    let (count, min, max, inserts): (i64, Option<i64>, Option<i64>, i64) = sqlx::query_as(
        "SELECT count(*), min(update_id), max(update_id), count(DISTINCT received_at) FROM telegram_updates",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let count = count as u64;
    assert!((at_least..=at_most).contains(&count), "stored {count} updates, expected {at_least}..={at_most}");
    if count > 0 {
        let (min, max) = (min.unwrap() as u64, max.unwrap() as u64);
        assert!(ids.contains(&min) && ids.contains(&max), "stored ids {min}..={max} are outside {ids:?}");
    }
    sqlx::query("TRUNCATE telegram_updates").execute(pool).await.unwrap();
    count as f64 / inserts.max(1) as f64
}

// ------------------------------------------------------------------------------------------- load runs

/// One row of the results table: the measured window of one run.
struct Row {
    requests: u64,
    rps: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// One load run (warm-up and measured window) against one target.
struct Load {
    /// Every update id used is in `first..first + span`.
    span: u64,
    /// Requests answered, warm-up included…
    answered: u64,
    /// …and requests written (answered, plus any cut off in flight when the generator stopped).
    written: u64,
    /// Answers that were not 2xx, and connection errors.
    failures: u64,
    /// Some of them, to show.
    sample: Vec<String>,
    measured: Row,
}

/// A load generator: loads the target at the address with update ids from the given one; blocking.
type Driver = Arc<dyn Fn(SocketAddr, &Config, u64) -> Load + Send + Sync>;

/// Runs `driver` against every target, `config.rounds` times, checking each run; returns the markdown block.
async fn run_targets(config: Arc<Config>, connect: PgConnectOptions, title: &str, driver: Driver) -> String {
    let pool = app_pool(&connect).await;
    let mut rows = Vec::new();
    // ids keep growing across runs (teloxide reads them as u32)
    let mut next_id = 1;
    for round in 0..config.rounds {
        for kind in order(round) {
            let target = Target::start(kind, &pool, &connect).await;
            let (addr, cfg, first, drive) = (target.addr(), config.clone(), next_id, driver.clone());
            let load = tokio::task::spawn_blocking(move || drive(addr, &cfg, first)).await.unwrap();
            next_id += load.span;
            let received = target.stop().await;
            assert_eq!(load.failures, 0, "{}: requests without a 2xx: {:?}", kind.label(), load.sample);
            let ids = first..first + load.span;
            let per_insert = match received {
                Some(received) => {
                    assert!(
                        (load.answered..=load.written).contains(&received),
                        "teloxide's listener handed out {received} updates; {} were answered, {} written",
                        load.answered,
                        load.written
                    );
                    None
                }
                // with duplicates, request r carries update first + r / 2: each id is sent (at most) twice
                None if config.duplicates => {
                    Some(check_stored_and_clear(&pool, ids, load.answered.div_ceil(2), load.written.div_ceil(2)).await)
                }
                None => Some(check_stored_and_clear(&pool, ids, load.answered, load.written).await),
            };
            let r = &load.measured;
            println!(
                "round {}: {:<45} written {:>8}  measured {:>8}  {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
                 max {:>6.1} ms  rows/INSERT {}",
                round + 1,
                kind.label(),
                load.written,
                r.requests,
                r.rps,
                ms(r.p50),
                ms(r.p99),
                ms(r.max),
                per_insert.map_or("-".to_owned(), |b| format!("{b:.1}"))
            );
            rows.push((kind, load.measured, per_insert));
        }
    }
    // whether "stored" means on disk: the server's own settings, as the benchmark ran
    let (version, fsync, commit): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let title = format!(
        "#### {title}: {} connections, {} s warm-up + {} s measured per run, {} rounds; {}; PostgreSQL \
         {version}, fsync={fsync}, synchronous_commit={commit}",
        config.connections,
        config.warmup.as_secs(),
        config.measure.as_secs(),
        config.rounds,
        machine(),
    );
    table(&title, &rows)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The markdown table: one line per run, then the mean throughput of each target and its ratio to teloxide.
fn table(title: &str, rows: &[(Kind, Row, Option<f64>)]) -> String {
    let mut lines = vec![
        title.to_owned(),
        String::new(),
        "| target | round | requests | req/s | p50 ms | p99 ms | max ms | rows/INSERT |".to_owned(),
        "|---|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    let mut rounds = std::collections::HashMap::new();
    for (kind, r, per_insert) in rows {
        let round = rounds.entry(*kind).and_modify(|n| *n += 1).or_insert(1);
        lines.push(format!(
            "| {} | {round} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} |",
            kind.label(),
            r.requests,
            r.rps,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            per_insert.map_or("–".to_owned(), |b| format!("{b:.1}"))
        ));
    }
    let mean = |kind: Kind| {
        let v: Vec<f64> = rows.iter().filter(|(k, ..)| *k == kind).map(|(_, r, _)| r.rps).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    if let Some(base) = mean(Kind::Teloxide) {
        lines.extend([String::new(), "| target | mean req/s | vs teloxide |".to_owned(), "|---|---:|---:|".to_owned()]);
        for (_, kind) in KINDS {
            if let Some(m) = mean(kind) {
                lines.push(format!("| {} | {m:.0} | {:.2} |", kind.label(), m / base));
            }
        }
    }
    lines.join("\n")
}

/// Prints a result block and appends it to `$VPNSHOP_BENCH_OUT/intake.md` (scripts/bench sets it).
fn report(block: &str) {
    crate::helpers::bench_report("intake.md", block);
}

/// The targets of round `i` (those named in VPNSHOP_BENCH_INTAKE_TARGETS, a comma list of `teloxide`,
/// `intake`, `app`; all by default), the order turned around every other round.
fn order(round: usize) -> Vec<Kind> {
    let chosen = std::env::var("VPNSHOP_BENCH_INTAKE_TARGETS").unwrap_or_else(|_| "teloxide,intake,nosync,app".into());
    let mut kinds: Vec<Kind> = KINDS
        .into_iter()
        .filter(|(name, _)| chosen.split(',').any(|c| c.trim() == *name))
        .map(|(_, kind)| kind)
        .collect();
    assert!(!kinds.is_empty(), "VPNSHOP_BENCH_INTAKE_TARGETS={chosen:?} names no target");
    if !round.is_multiple_of(2) {
        kinds.reverse();
    }
    kinds
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores ({cpu})")
}

// ------------------------------------------------------------------------------ the Rust load generator

/// Reads one HTTP/1.1 response (status line, headers, `Content-Length` body) from `stream`; bytes after it
/// stay in `buf`. Returns the status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("response head is not UTF-8"))?;
            let status: u16 = head
                .strip_prefix("HTTP/1.1 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| bad(head))?;
            let mut length = None;
            for line in head.split("\r\n").skip(1) {
                let (name, value) = line.split_once(':').ok_or_else(|| bad(line))?;
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>().map_err(|_| bad(line))?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") || name.eq_ignore_ascii_case("connection") {
                    return Err(bad(&format!("unexpected header {line}")));
                }
            }
            let total = end + 4 + length.ok_or_else(|| bad("no content-length"))?;
            while buf.len() < total {
                if stream.read_buf(buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            buf.drain(..total);
            return Ok(status);
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

struct Worker {
    sent: u64,
    not_2xx: Vec<u16>,
    latencies: Vec<Duration>,
}

/// One connection: sends the next update as soon as the previous answer is in, until the window ends.
async fn worker(
    mut stream: TcpStream,
    host: Arc<str>,
    template: Arc<str>,
    ids: Arc<AtomicU64>,
    window: (Instant, Instant),
    duplicates: Option<u64>,
) -> Worker {
    let (id_mark, user_mark) = (ID_MARK.to_string(), USER_MARK.to_string());
    let mut out = Worker { sent: 0, not_2xx: Vec::new(), latencies: Vec::with_capacity(1 << 16) };
    let (mut request, mut answer) = (Vec::with_capacity(1024), Vec::with_capacity(4096));
    while Instant::now() < window.1 {
        let request_no = ids.fetch_add(1, Ordering::Relaxed);
        // with duplicates (from `first`), two requests in a row carry the same update
        let id = duplicates.map_or(request_no, |first| first + (request_no - first) / 2);
        let body = template.replace(&id_mark, &id.to_string()).replace(&user_mark, &user_of(id).to_string());
        request.clear();
        request.extend_from_slice(
            format!(
                "POST {PATH} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
                 x-telegram-bot-api-secret-token: {SECRET}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body.as_bytes());
        let started = Instant::now();
        stream.write_all(&request).await.expect("send a request");
        let status = read_response(&mut stream, &mut answer).await.expect("read an answer");
        let done = Instant::now();
        out.sent += 1;
        if !(200..300).contains(&status) {
            out.not_2xx.push(status);
        }
        if done >= window.0 && done <= window.1 {
            out.latencies.push(done - started);
        }
    }
    out
}

/// Loads `addr` from `config.connections` connections on a runtime of its own (two threads, besides the
/// server's), warm-up then the measured window. Update ids are `first`, `first + 1`, … with none skipped.
fn rust_load(addr: SocketAddr, config: &Config, first: u64) -> Load {
    let (connections, warmup, measure) = (config.connections, config.warmup, config.measure);
    let duplicates = config.duplicates.then_some(first);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("load runtime");
    runtime.block_on(async move {
        let template: Arc<str> = update_template().into();
        let host: Arc<str> = addr.to_string().into();
        let ids = Arc::new(AtomicU64::new(first));
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).unwrap();
            streams.push(stream);
        }
        let start = Instant::now() + warmup;
        let window = (start, start + measure);
        let workers: Vec<_> = streams
            .into_iter()
            .map(|s| tokio::spawn(worker(s, host.clone(), template.clone(), ids.clone(), window, duplicates)))
            .collect();
        let (mut sent, mut not_2xx, mut latencies) = (0, Vec::new(), Vec::new());
        for w in workers {
            let w = w.await.expect("load worker");
            sent += w.sent;
            not_2xx.extend(w.not_2xx);
            latencies.extend(w.latencies);
        }
        assert_eq!(ids.load(Ordering::Relaxed) - first, sent, "every id taken was sent and answered");
        latencies.sort_unstable();
        assert!(!latencies.is_empty(), "no request completed in the measured window");
        let rank = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1];
        let measured = Row {
            requests: latencies.len() as u64,
            rps: latencies.len() as f64 / measure.as_secs_f64(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: latencies[latencies.len() - 1],
        };
        Load {
            span: if duplicates.is_some() { sent.div_ceil(2) } else { sent },
            answered: sent,
            written: sent,
            failures: not_2xx.len() as u64,
            sample: not_2xx.iter().take(20).map(|s| s.to_string()).collect(),
            measured,
        }
    })
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench bench_intake"]
async fn bench_intake_webhook(_: PgPoolOptions, connect: PgConnectOptions) {
    multi_thread(async move {
        let config = Arc::new(Config::from_env());
        let block = run_targets(config, connect, "Telegram intake, Rust load generator", Arc::new(rust_load)).await;
        report(&block);
    });
}

/// Every update twice, by two connections at about the same time (what Telegram does when answers are slow):
/// the writers store overlapping ids at once, which must neither deadlock nor fail a batch.
#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench bench_intake"]
async fn bench_intake_duplicates(_: PgPoolOptions, connect: PgConnectOptions) {
    multi_thread(async move {
        let config = Arc::new(Config { duplicates: true, ..Config::from_env() });
        let title = "Telegram intake, every update delivered twice at once, Rust load generator";
        let block = run_targets(config, connect, title, Arc::new(rust_load)).await;
        report(&block);
    });
}

// ---------------------------------------------------------------------------------------------------- wrk

/// The wrk script: thread `t` of `n` numbers its updates `first + t * STRIDE + 0, 1, 2, …` (so ids are unique
/// and in `first..first + n * STRIDE`) and `done` prints one line with what we check and report.
const WRK_STRIDE: u64 = 10_000_000;
const WRK_THREADS: u64 = 2;

fn wrk_script(first: u64) -> String {
    let template = update_template();
    format!(
        r#"-- written by tests/it/bench_intake.rs
local template = [==[{template}]==]
local first, stride = {first}, {WRK_STRIDE}
local threads = {{}}
counter = 0
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function request()
  local id = first + tid * stride + counter
  counter = counter + 1
  local user = {FIRST_USER} + id % {USERS}
  local body = template:gsub("{ID_MARK}", string.format("%d", id)):gsub("{USER_MARK}", string.format("%d", user))
  return wrk.format("POST", "{PATH}", {{["Content-Type"] = "application/json",
    ["X-Telegram-Bot-Api-Secret-Token"] = "{SECRET}"}}, body)
end
function done(summary, latency, requests)
  local written = 0
  for _, t in ipairs(threads) do written = written + t:get("counter") end
  local e = summary.errors
  io.write(string.format("BENCH requests=%d written=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
    "status=%d connect=%d read=%d write=%d timeout=%d\n", summary.requests, written, summary.duration,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)), latency.max, e.status, e.connect,
    e.read, e.write, e.timeout))
end
"#
    )
}

/// What `done` printed.
struct WrkRun {
    values: std::collections::HashMap<String, u64>,
}

impl WrkRun {
    fn get(&self, key: &str) -> u64 {
        self.values[key]
    }
}

/// Runs wrk for `secs` with ids from `first`.
fn wrk(addr: SocketAddr, connections: usize, secs: u64, first: u64) -> WrkRun {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("intake.lua");
    std::fs::write(&script, wrk_script(first)).unwrap();
    let out = std::process::Command::new("wrk")
        .args(["-t", &WRK_THREADS.to_string(), "-c", &connections.to_string(), "-d", &format!("{secs}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}{PATH}"))
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find_map(|l| l.strip_prefix("BENCH ")).unwrap_or_else(|| panic!("wrk said: {text}"));
    let values = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or_else(|_| panic!("wrk value {k}={v}"))))
        .collect();
    WrkRun { values }
}

/// A warm-up wrk run, then the measured one.
fn wrk_load(addr: SocketAddr, config: &Config, first: u64) -> Load {
    let span = WRK_THREADS * WRK_STRIDE;
    let warm = wrk(addr, config.connections, config.warmup.as_secs().max(1), first);
    let run = wrk(addr, config.connections, config.measure.as_secs().max(1), first + span);
    let errors = ["status", "connect", "read", "write", "timeout"];
    let failures = errors.iter().map(|k| warm.get(k) + run.get(k)).sum();
    let sample = errors.iter().map(|k| format!("{k}: {}", warm.get(k) + run.get(k))).collect();
    let us = Duration::from_micros;
    Load {
        span: 2 * span,
        answered: warm.get("requests") + run.get("requests"),
        written: warm.get("written") + run.get("written"),
        failures,
        sample,
        measured: Row {
            requests: run.get("requests"),
            rps: run.get("requests") as f64 / us(run.get("duration_us")).as_secs_f64(),
            p50: us(run.get("p50_us")),
            p99: us(run.get("p99_us")),
            max: us(run.get("max_us")),
        },
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench bench_intake"]
async fn bench_intake_wrk(_: PgPoolOptions, connect: PgConnectOptions) {
    if std::process::Command::new("wrk").arg("--version").output().is_err() {
        assert!(!tools_required(), "VPNSHOP_REQUIRE_TOOLS=1 but wrk is missing (apt-get install wrk)");
        eprintln!("skipping: wrk is not installed (apt-get install wrk)");
        return;
    }
    multi_thread(async move {
        let config = Arc::new(Config::from_env());
        let block = run_targets(config, connect, "Telegram intake, wrk (2 threads)", Arc::new(wrk_load)).await;
        report(&block);
    });
}

// ------------------------------------------------------------------------------ INSERT size, sequentially

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench bench_intake"]
async fn bench_intake_insert_size(_: PgPoolOptions, connect: PgConnectOptions) {
    multi_thread(async move {
        const REPEAT: usize = 40;
        let pool = app_pool(&connect).await;
        let template = update_template();
        let (id_mark, user_mark) = (ID_MARK.to_string(), USER_MARK.to_string());
        let mut lines = vec![
            format!(
                "#### One `insert_many` of n `/start` updates, {REPEAT} times each, one after the other; {}",
                machine()
            ),
            String::new(),
            "| rows | JSON bytes | median ms | max ms | over 30 ms |".to_owned(),
            "|---:|---:|---:|---:|---:|".to_owned(),
        ];
        let mut next = 1_u64;
        for rows in [1_usize, 8, 16, 24, 28, 32, 40, 48, 56, 64] {
            let (mut took, mut bytes) = (Vec::with_capacity(REPEAT), 0);
            for _ in 0..REPEAT {
                let ids: Vec<i64> = (next..next + rows as u64).map(|i| i as i64).collect();
                next += rows as u64;
                let chats: Vec<i64> = ids.iter().map(|&i| user_of(i as u64) as i64).collect();
                let texts: Vec<String> = ids
                    .iter()
                    .map(|&i| {
                        template.replace(&id_mark, &i.to_string()).replace(&user_mark, &user_of(i as u64).to_string())
                    })
                    .collect();
                bytes = texts.iter().map(String::len).sum();
                let traces = vec![None; ids.len()];
                let started = Instant::now();
                let stored = vpnshop::services::inbox::store(&pool, &ids, &chats, &texts, &traces).await.unwrap();
                took.push(started.elapsed());
                assert_eq!(stored, rows as u64, "every row is new and stored");
            }
            took.sort_unstable();
            let slow = took.iter().filter(|d| **d > Duration::from_millis(30)).count();
            lines.push(format!(
                "| {rows} | {bytes} | {:.2} | {:.2} | {slow} |",
                ms(took[REPEAT / 2]),
                ms(took[REPEAT - 1])
            ));
        }
        pool.close().await;
        report(&lines.join("\n"));
    });
}
