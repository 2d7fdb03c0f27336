//! The application: shared state built from `Settings`, and `run`, which starts every part (HTTP, metrics,
//! job workers, scheduler, bot) and stops them together on cancellation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bot::Telegram;
use crate::bot::notifier::TelegramNotifier;
use crate::config::Settings;
use crate::db::locks::Locks;
use crate::jobs::Registry;
use crate::jobs::maintenance::{CLEANUP_KIND, CleanupJob, CleanupSweep};
use crate::jobs::scheduler::{self, Sweep};
use crate::jobs::worker::{Worker, listen_for_jobs};
use crate::provision::NodeApi;
use crate::provision::node::NoSshKey;
use crate::provision::ssh::{KeySource, SshOptions};
use crate::provision::sshnode::SshNodes;
use crate::services::catalog::{self, Catalog};
use crate::services::nodes::Nodes;
use crate::services::notify::{LogNotifier, Notifier};
use crate::services::ratelimit::RateLimiter;
use crate::{db, http, metrics};

/// What every part of the process shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    pub settings: Settings,
    pub pool: PgPool,
    /// Connections that hold advisory locks while node syncs and sweeps run (never the main pool's).
    pub locks: Locks,
    pub redis: Option<redis::aio::ConnectionManager>,
    /// Unique among running instances and stable across restarts (`instance.name`): names this instance's
    /// job workers (`<instance>/<n>`), so a restart takes over what its previous run left running.
    pub instance: String,
    /// The node provisioner (SSH + the cores' APIs).
    pub nodes: Nodes,
    /// Delivers customer notices and admin alerts (the bot, or the log when it is off).
    pub notifier: Arc<dyn Notifier>,
    /// Rate limits shared by all instances (through Redis when configured).
    pub limiter: RateLimiter,
    /// The catalogue's exchange rates (to price a plan in a currency it has no price in), when it can be read.
    pub rates: Option<crate::domain::Rates>,
    /// The Telegram bot, when a token is configured.
    pub telegram: Option<Telegram>,
    /// Permits for database work on public routes (`database.public_connections`): however many feed requests
    /// come, they hold no more of the pool than this (`http::limits::PublicDb`).
    pub public_db: Arc<tokio::sync::Semaphore>,
    /// The online payment gateways configured (Stripe, Zarinpal).
    pub gateways: crate::services::payments::online::Gateways,
    /// Signs and checks the admin API's access tokens.
    pub auth: crate::services::auth::Auth,
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// Builds the state. Connections are lazy: a missing database or Redis shows in `/readyz`, not as a crash.
    pub fn build(settings: Settings) -> anyhow::Result<AppState> {
        let pool = db::pool(&settings)?;
        AppState::with_pool(settings, pool)
    }

    /// Builds the state around an existing pool (tests hand in their fresh database).
    pub fn with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<AppState> {
        let node_api = node_api(&settings)?;
        AppState::assemble(settings, pool, node_api, None)
    }

    /// Builds the state from its outside-facing parts.
    pub fn assemble(
        settings: Settings,
        pool: PgPool,
        node_api: Arc<dyn NodeApi>,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> anyhow::Result<AppState> {
        let redis = match &settings.redis.url {
            None => None,
            Some(url) => {
                use secrecy::ExposeSecret;
                let client = redis::Client::open(url.expose_secret()).context("invalid redis.url")?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2);
                Some(redis::aio::ConnectionManager::new_lazy_with_config(client, config).context("redis client")?)
            }
        };
        let instance = instance_name(&settings);
        // every job worker may hold a node lock, the scheduler a sweep lock, the instance its name, the CLI one more
        let lock_connections = u32::try_from(settings.jobs.workers).unwrap_or(u32::MAX).saturating_add(5);
        let locks =
            Locks::for_pool(&pool, lock_connections, Duration::from_secs(settings.database.acquire_timeout_secs));
        let nodes = Nodes {
            pool: pool.clone(),
            locks: locks.clone(),
            api: node_api,
            settings: settings.provision.clone(),
            jobs: settings.jobs.clone(),
        };
        let limiter = RateLimiter::new(redis.clone(), &settings.redis.prefix);
        let telegram = Telegram::new(&settings, redis.clone())?;
        let notifier = notifier.unwrap_or_else(|| match &telegram {
            Some(tg) => Arc::new(TelegramNotifier {
                pool: pool.clone(),
                settings: settings.clone(),
                bot: tg.bot.clone(),
                locks: locks.clone(),
            }),
            None => Arc::new(LogNotifier),
        });
        let rates = match Catalog::load(&settings.catalog.path) {
            Ok(catalog) => Some(catalog.rates().clone()),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "no exchange rates: prices are shown only as listed");
                None
            }
        };
        let public_db = Arc::new(tokio::sync::Semaphore::new(settings.database.public_connections as usize));
        let gateways = crate::services::payments::online::Gateways {
            stripe: crate::payments::stripe::from_settings(&settings)?,
            zarinpal: crate::payments::zarinpal::from_settings(&settings)?,
        };
        let auth = crate::services::auth::Auth::new(&settings.security);
        Ok(AppState(Arc::new(App {
            settings,
            pool,
            locks,
            redis,
            instance,
            nodes,
            notifier,
            limiter,
            rates,
            telegram,
            public_db,
            gateways,
            auth,
        })))
    }
}

/// `instance.name`, else `<hostname>:<http port>` (two instances on one host cannot share a port); with port 0
/// (tests) a name unique to this process.
fn instance_name(settings: &Settings) -> String {
    if let Some(name) = &settings.instance.name {
        return name.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "vpnshop".into());
    match settings.http.addr.port() {
        0 => format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
        port => format!("{host}:{port}"),
    }
}

/// The real node client when an SSH key is configured; otherwise a stand-in whose every operation says so.
fn node_api(settings: &Settings) -> anyhow::Result<Arc<dyn NodeApi>> {
    let p = &settings.provision;
    let key = match (&p.ssh_key, &p.ssh_key_path) {
        (Some(text), _) => KeySource::Text(text.clone()),
        (None, Some(path)) => KeySource::Path(path.clone()),
        // said once, by `run` (commands that never touch a node need not hear it)
        (None, None) => return Ok(Arc::new(NoSshKey)),
    };
    let options = SshOptions {
        connect_timeout: Duration::from_secs(p.connect_timeout_secs),
        command_timeout: Duration::from_secs(p.op_timeout_secs),
        keepalive_interval: Duration::from_secs(p.keepalive_secs.max(1)),
        keepalive_max: 3,
    };
    let nodes = SshNodes::new(&key, options).map_err(|e| anyhow::anyhow!("provision SSH key: {e}"))?;
    Ok(Arc::new(nodes))
}

/// The bound sockets. Binding before running lets tests use port 0 and read the real address.
pub struct Listeners {
    pub http: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
        let http = TcpListener::bind(settings.http.addr)
            .await
            .with_context(|| format!("cannot listen on http.addr = {}", settings.http.addr))?;
        let metrics = if settings.metrics.enabled {
            Some(
                TcpListener::bind(settings.metrics.addr)
                    .await
                    .with_context(|| format!("cannot listen on metrics.addr = {}", settings.metrics.addr))?,
            )
        } else {
            None
        };
        Ok(Listeners { http, metrics })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("a bound listener has an address")
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Start-up work before serving: pending migrations, and the catalogue when the database has none.
pub async fn prepare(state: &AppState) -> anyhow::Result<()> {
    if state.settings.database.migrate_on_start {
        use db::migrations::Policy;
        let policy = if state.settings.database.migrate_unsafe_on_start { Policy::All } else { Policy::OnlyIfSafe };
        db::migrations::apply(&state.pool.connect_options(), policy).await?;
    }
    // every node gets its current base (isolation rules included) at once, not at its next reconcile
    let nodes = crate::services::sweeps::enqueue_per_node(
        &state.pool,
        crate::services::nodes::RECONCILE_KIND,
        &state.settings.jobs,
    );
    if let Err(e) = nodes.await {
        tracing::warn!(error = %e, "could not enqueue the start-up sync of the nodes");
    }
    if state.settings.catalog.seed_on_start {
        let catalog = Catalog::load(&state.settings.catalog.path)?;
        if let Some(report) = catalog::seed_if_empty(&state.pool, &catalog).await.map_err(anyhow::Error::from)? {
            tracing::info!(plans = report.plans_added, prices = report.prices_added, "plan catalogue seeded");
        }
    }
    Ok(())
}

/// The job handlers of this process.
pub fn job_registry(state: &AppState) -> Registry {
    use crate::jobs::provision::{EndJob, NodeJob, NodeOp, NotifyAdminsJob, NotifyUserJob, PlaceJob};
    use crate::services::{nodes, notify, subscriptions};
    let mut registry = Registry::new();
    let (pool, jobs) = (state.pool.clone(), state.settings.jobs.clone());
    registry.register(CLEANUP_KIND, Arc::new(CleanupJob { pool: pool.clone(), settings: jobs.clone() }));
    let backup = crate::jobs::backup::BackupJob { settings: state.settings.clone() };
    registry.register(crate::jobs::backup::KIND, Arc::new(backup));
    registry.register(subscriptions::PLACE_KIND, Arc::new(PlaceJob { pool: pool.clone(), jobs: jobs.clone() }));
    registry.register(subscriptions::END_KIND, Arc::new(EndJob { pool, jobs }));
    for (kind, op) in [
        (subscriptions::NODE_APPLY_KIND, NodeOp::Apply),
        (nodes::RECONCILE_KIND, NodeOp::Reconcile),
        (nodes::METER_KIND, NodeOp::Meter),
    ] {
        registry.register(kind, Arc::new(NodeJob { nodes: state.nodes.clone(), op }));
    }
    registry.register(notify::USER_KIND, Arc::new(NotifyUserJob { notifier: state.notifier.clone() }));
    registry.register(notify::ADMINS_KIND, Arc::new(NotifyAdminsJob { notifier: state.notifier.clone() }));
    {
        use crate::jobs::payments::{AnnounceJob, AutoAcceptJob, PaymentMessage, PaymentMessageJob};
        use crate::services::payments as pay;
        let settings = state.settings.clone();
        registry.register(pay::AUTO_ACCEPT_KIND, Arc::new(AutoAcceptJob { pool: state.pool.clone(), settings }));
        let announce = AnnounceJob { pool: state.pool.clone(), notifier: state.notifier.clone() };
        registry.register(pay::online::ANNOUNCE_KIND, Arc::new(announce));
        for (kind, which) in [
            (pay::PAYMENT_NOTICE_KIND, PaymentMessage::Notice),
            (pay::REVIEW_POST_KIND, PaymentMessage::PostReview),
            (pay::REVIEW_CLOSE_KIND, PaymentMessage::CloseReview),
        ] {
            registry.register(kind, Arc::new(PaymentMessageJob { notifier: state.notifier.clone(), which }));
        }
    }
    let verify = crate::jobs::zarinpal::VerifyJob::new(&state.pool, &state.settings, &state.gateways);
    registry.register(crate::services::payments::zarinpal::VERIFY_KIND, Arc::new(verify));
    if let Some(tg) = &state.telegram {
        registry.register(
            crate::bot::outbox::SEND_KIND,
            Arc::new(crate::bot::outbox::SendJob { bot: tg.bot.clone(), pool: state.pool.clone() }),
        );
        let broadcast = &state.settings.telegram.broadcast;
        let sender = crate::bot::broadcast::Broadcaster::new(tg.bot.clone(), broadcast.per_second);
        registry.register(
            crate::services::broadcasts::SEND_KIND,
            Arc::new(crate::jobs::broadcasts::BroadcastJob {
                pool: state.pool.clone(),
                sender: Arc::new(sender),
                settings: broadcast.clone(),
                jobs: state.settings.jobs.clone(),
                instance: state.instance.clone(),
            }),
        );
    }
    registry
}

/// The sweeps this process can schedule, by the names used in `scheduler.sweeps`.
pub fn sweeps(state: &AppState) -> HashMap<String, Arc<dyn Sweep>> {
    use crate::jobs::provision::{ProvisionSweep, ProvisionSweeps};
    let mut sweeps: HashMap<String, Arc<dyn Sweep>> = HashMap::new();
    let (pool, jobs) = (state.pool.clone(), state.settings.jobs.clone());
    sweeps.insert("jobs_cleanup".into(), Arc::new(CleanupSweep { pool: pool.clone(), settings: jobs.clone() }));
    let backup = crate::jobs::backup::BackupSweep { pool: pool.clone(), jobs: jobs.clone() };
    sweeps.insert("backup".into(), Arc::new(backup));
    for (name, which) in [
        ("meter", ProvisionSweep::Meter),
        ("reconcile", ProvisionSweep::Reconcile),
        ("lifecycle", ProvisionSweep::Lifecycle),
        ("placement", ProvisionSweep::Placement),
    ] {
        sweeps.insert(name.into(), Arc::new(ProvisionSweeps { pool: pool.clone(), jobs: jobs.clone(), which }));
    }
    let payments = crate::jobs::payments::PaymentSweep { pool: pool.clone(), settings: state.settings.clone() };
    sweeps.insert("auto_accept".into(), Arc::new(payments));
    let zarinpal = crate::jobs::zarinpal::ReconcileSweep::new(&pool, &state.settings, &state.gateways);
    sweeps.insert("payments_reconcile".into(), Arc::new(zarinpal));
    let stripe = crate::jobs::stripe::ReconcileSweep::new(&pool, &state.settings, &state.gateways);
    sweeps.insert("stripe_reconcile".into(), Arc::new(stripe));
    // broadcasts are sent by instances with the bot; without it the sweep has nothing to do
    let revive = crate::jobs::broadcasts::ReviveSweep { pool, jobs, enabled: state.telegram.is_some() };
    sweeps.insert("broadcasts".into(), Arc::new(revive));
    sweeps
}

/// Runs every part until `cancel` fires (or one part fails, which cancels the rest).
pub async fn run(state: AppState, listeners: Listeners, cancel: CancellationToken) -> anyhow::Result<()> {
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let settings = &state.settings;

    if settings.security.jwt_secret.is_none() {
        tracing::warn!(
            "security.jwt_secret is not set: admin API tokens are signed with a random key, last until this process \
             stops and are not valid on other instances"
        );
    }
    let router = http::router(state.clone());
    let http_cancel = cancel.clone();
    tracing::info!(addr = %listeners.http_addr(), "HTTP server listening");
    let limits = http::Limits::from_settings(&settings.http);
    tasks.spawn(async move { http::serve(listeners.http, router, limits, http_cancel).await.context("HTTP server") });

    if let Some(listener) = listeners.metrics {
        let handle = metrics::handle();
        tracing::info!(addr = %listener.local_addr()?, "metrics listening on /metrics");
        tasks.spawn(infallible(metrics::upkeep(handle.clone(), cancel.clone())));
        let exposition = metrics::Exposition::new(Some((state.pool.clone(), settings.database.max_connections)));
        let (every, timeout) = (
            Duration::from_secs(settings.metrics.collect_interval_secs),
            Duration::from_millis(settings.metrics.collect_timeout_ms),
        );
        tasks.spawn(infallible(exposition.clone().collect(state.pool.clone(), every, timeout, cancel.clone())));
        let metrics_cancel = cancel.clone();
        tasks.spawn(async move {
            axum::serve(listener, metrics::router(handle, exposition))
                .with_graceful_shutdown(metrics_cancel.cancelled_owned())
                .await
                .context("metrics server")
        });
    }

    // the instance's name must be its own: another live instance with it would see its jobs taken back below
    let alive = match state.locks.try_lock(db::advisory_key(&format!("instance.{}", state.instance))).await {
        Ok(Some(held)) => Some(held),
        Ok(None) => anyhow::bail!(
            "another instance named {:?} is running on this database; give each instance its own `instance.name`",
            state.instance
        ),
        // the database is down: the process still starts (and says so in /readyz)
        Err(e) => {
            tracing::warn!(error = %e, "could not check that this instance's name is its own");
            None
        }
    };
    // this instance is starting: whatever its previous run was still running is not running any more
    match crate::services::queue::release_instance(&state.pool, &state.instance).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::warn!(jobs = n, instance = %state.instance, "took back jobs left running by this instance's previous run")
        }
        Err(e) => tracing::warn!(error = %e, "could not look for jobs left running by this instance's previous run"),
    }
    match crate::services::inbox::release_instance(&state.pool, &state.instance).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(updates = n, "took back Telegram updates this instance's previous run was handling"),
        Err(e) => {
            tracing::warn!(error = %e, "could not look for Telegram updates left by this instance's previous run")
        }
    }
    let registry = Arc::new(job_registry(&state));
    {
        let sweeps = settings.scheduler.sweeps.keys().filter(|_| settings.scheduler.enabled).map(String::as_str);
        metrics::preregister(registry.kinds(), sweeps);
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    tasks.spawn(infallible(listen_for_jobs(state.pool.clone(), wake.clone(), cancel.clone())));
    for i in 0..settings.jobs.workers {
        let mut worker =
            Worker::new(format!("{}/{i}", state.instance), state.pool.clone(), registry.clone(), settings.jobs.clone());
        worker.wake = wake.clone();
        tasks.spawn(infallible(worker.run(cancel.clone())));
    }

    let mut cron = if settings.scheduler.enabled {
        Some(scheduler::start(state.locks.clone(), sweeps(&state), &settings.scheduler.sweeps).await?)
    } else {
        None
    };

    if settings.provision.ssh_key.is_none() && settings.provision.ssh_key_path.is_none() {
        tracing::warn!("provisioning disabled: no SSH key (set provision.ssh_key_path or VPNSHOP__PROVISION__SSH_KEY)");
    }
    match state.telegram.clone() {
        None => tracing::warn!("Telegram bot disabled: TELEGRAM_BOT_TOKEN is not set (the shop runs without its bot)"),
        Some(tg) => {
            for _ in 0..crate::bot::intake::WRITERS {
                tasks.spawn(infallible(tg.intake.clone().write(state.pool.clone(), cancel.clone())));
            }
            tasks.spawn(infallible(crate::bot::inbox::run(state.clone(), tg.clone(), cancel.clone())));
            tasks.spawn(infallible(start_delivery(state.clone(), tg, cancel.clone())));
        }
    }

    let mut result = Ok(());
    tokio::select! {
        _ = cancel.cancelled() => {}
        Some(done) = tasks.join_next() => {
            // a task ending because shutdown began at the same moment is not a failure
            if !cancel.is_cancelled() {
                result = match done {
                    Ok(Ok(())) => Err(anyhow::anyhow!("a service task stopped unexpectedly")),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(anyhow::Error::new(e).context("a service task panicked")),
                };
            }
            cancel.cancel();
        }
    }
    tracing::info!("shutting down");
    if let Some(cron) = cron.as_mut() {
        let _ = cron.shutdown().await;
    }
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(error = format!("{e:#}"), "task ended with an error during shutdown");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), drain).await.is_err() {
        tracing::warn!("some tasks did not stop within 30 s; exiting anyway");
    }
    if let Some(alive) = alive {
        alive.release().await;
    }
    // connections still checked out (a job stuck on a hanging node) must not hold the exit up
    let close = async {
        state.locks.close().await;
        state.pool.close().await;
    };
    if tokio::time::timeout(Duration::from_secs(5), close).await.is_err() {
        tracing::warn!("database connections did not close within 5 s; exiting anyway");
    }
    result
}

/// Connects the bot to Telegram (retrying while Telegram is unreachable), then polls when there is no webhook.
async fn start_delivery(state: AppState, tg: Telegram, cancel: CancellationToken) {
    let mut wait = Duration::from_secs(1);
    loop {
        match crate::bot::configure_delivery(&tg, &state.settings).await {
            Ok(()) => break,
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                retry_in_secs = wait.as_secs(),
                "cannot connect the bot to Telegram"
            ),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
    if crate::bot::webhook_url(&state.settings).is_none() {
        crate::bot::polling::poll(tg, cancel).await;
    } else {
        // webhook mode: deliveries arrive over HTTP; this task just lives as long as the app
        cancel.cancelled().await;
    }
}

/// Adapts a task that cannot fail to the task set's result type.
async fn infallible(task: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    task.await;
    Ok(())
}
