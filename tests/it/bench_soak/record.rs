//! What the soak records: per route, every request's client-side latency (a `Vec` of durations, percentiles at
//! the end) and its errors; and every ~10 s a sample of the shop — RSS, database connections, backlogs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// One route's (or bot interaction's) record.
#[derive(Default)]
pub struct Route {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    /// The first few errors, to show.
    pub samples: Vec<String>,
}

/// Every route's record, shared by the load tasks.
#[derive(Default)]
pub struct Recorder(Mutex<BTreeMap<&'static str, Route>>);

impl Recorder {
    pub fn ok(&self, route: &'static str, took: Duration) {
        self.0.lock().unwrap().entry(route).or_default().latencies.push(took);
    }

    pub fn error(&self, route: &'static str, what: String) {
        let mut routes = self.0.lock().unwrap();
        let r = routes.entry(route).or_default();
        r.errors += 1;
        if r.samples.len() < 5 {
            r.samples.push(what);
        }
    }

    /// Records an HTTP answer: a 2xx is a success with its latency, anything else an error.
    pub fn answer(&self, route: &'static str, took: Duration, result: &Result<u16, String>) {
        match result {
            Ok(status) if (200..300).contains(status) => self.ok(route, took),
            Ok(status) => self.error(route, format!("HTTP {status}")),
            Err(e) => self.error(route, e.clone()),
        }
    }

    pub fn take(&self) -> BTreeMap<&'static str, Route> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `p` (0–1) of sorted samples, nearest rank.
fn rank(sorted: &[Duration], p: f64) -> Duration {
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// The per-route table: requests, rate over `window`, errors, p50/p90/p99/max.
pub fn route_table(routes: &mut BTreeMap<&'static str, Route>, window: Duration, filter: fn(&str) -> bool) -> String {
    let mut lines = vec![
        "| route | ok | per s | errors | p50 ms | p90 ms | p99 ms | max ms |".to_owned(),
        "|---|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for (name, r) in routes.iter_mut().filter(|(name, _)| filter(name)) {
        r.latencies.sort_unstable();
        let n = r.latencies.len();
        let pct = |p| if n == 0 { "–".to_owned() } else { format!("{:.1}", ms(rank(&r.latencies, p))) };
        lines.push(format!(
            "| {name} | {n} | {:.2} | {} | {} | {} | {} | {} |",
            n as f64 / window.as_secs_f64(),
            r.errors,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        ));
    }
    lines.join("\n")
}

/// One look at the shop, every ~10 s.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the window opened.
    pub at: f64,
    pub rss_kib: u64,
    /// CPU seconds the shop has used since it started.
    pub cpu_secs: f64,
    /// The shop's connections to its database by state (`active`, `idle`, `idle in transaction`, …).
    pub connections: BTreeMap<String, i64>,
    /// Updates stored and not handled yet; jobs due and not done.
    pub unhandled: i64,
    pub jobs_due: i64,
}

pub async fn sample(pool: &sqlx::PgPool, pid: u32, at: f64) -> Sample {
    let (rss_kib, cpu_secs) = (super::shop::rss_kib(pid), super::shop::cpu_secs(pid));
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name NOT LIKE 'soak-bench%'
          GROUP BY state",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let (unhandled, jobs_due): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM telegram_updates WHERE handled_at IS NULL),
                (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND run_at <= now())",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let connections = rows.into_iter().map(|(state, n)| (state.unwrap_or_else(|| "none".into()), n)).collect();
    Sample { at, rss_kib, cpu_secs, connections, unhandled, jobs_due }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The time series as a table, then RSS first/min/max/last and the least-squares slope over the second half.
pub fn sample_tables(samples: &[Sample]) -> String {
    let mut lines = vec![
        "| t s | RSS MiB | CPU % of a core | DB conns | active | idle | idle in tx | updates unhandled | jobs due |"
            .to_owned(),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for (i, s) in samples.iter().enumerate() {
        let state = |k: &str| s.connections.get(k).copied().unwrap_or(0);
        let cpu = i
            .checked_sub(1)
            .map(|p| &samples[p])
            .filter(|p| s.at > p.at)
            .map_or("–".to_owned(), |p| format!("{:.0}", 100.0 * (s.cpu_secs - p.cpu_secs) / (s.at - p.at)));
        lines.push(format!(
            "| {:.0} | {:.1} | {cpu} | {} | {} | {} | {} | {} | {} |",
            s.at,
            mib(s.rss_kib),
            s.connections.values().sum::<i64>(),
            state("active"),
            state("idle"),
            state("idle in transaction"),
            s.unhandled,
            s.jobs_due
        ));
    }
    let rss: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    let half = &samples[samples.len() / 2..];
    let slope = slope_per_hour(half);
    let conns = samples.iter().map(|s| s.connections.values().sum::<i64>()).max().unwrap_or(0);
    lines.extend([
        String::new(),
        "| RSS | MiB |".to_owned(),
        "|---|---:|".to_owned(),
        format!("| first sample | {:.1} |", mib(rss[0])),
        format!("| min | {:.1} |", mib(*rss.iter().min().unwrap())),
        format!("| max | {:.1} |", mib(*rss.iter().max().unwrap())),
        format!("| last | {:.1} |", mib(rss[rss.len() - 1])),
        format!("| slope over the second half ({} samples), per hour | {slope:+.1} |", half.len()),
        format!("| most database connections at once (the shop's) | {conns} |"),
        format!(
            "| the shop's CPU from the first to the last sample, % of one core | {:.0} |",
            100.0 * (samples[samples.len() - 1].cpu_secs - samples[0].cpu_secs)
                / (samples[samples.len() - 1].at - samples[0].at).max(1.0)
        ),
    ]);
    lines.join("\n")
}

/// Least-squares slope of RSS against time, in MiB per hour.
fn slope_per_hour(samples: &[Sample]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let n = samples.len() as f64;
    let (mx, my) =
        (samples.iter().map(|s| s.at).sum::<f64>() / n, samples.iter().map(|s| mib(s.rss_kib)).sum::<f64>() / n);
    let cov: f64 = samples.iter().map(|s| (s.at - mx) * (mib(s.rss_kib) - my)).sum();
    let var: f64 = samples.iter().map(|s| (s.at - mx).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 3600.0 }
}
