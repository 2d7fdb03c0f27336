//! Monitoring as an operator sees it: the alerting rules and the Grafana dashboard (promtool, and every metric
//! they name exported for real), route labels that never carry a path's secrets, and the business gauges
//! after a scenario. Exposition checks run the real binary: its metrics are its own, not this test process's
//! (which every test shares).

mod exposition;
mod routes;
mod rules;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

/// `vpnshop serve` on the test's database, with its HTTP and metrics listeners on free ports; killed on drop.
pub struct Shop {
    child: Child,
    /// Its stdout and stderr.
    log: tempfile::NamedTempFile,
    pub http: String,
    metrics: String,
    client: reqwest::Client,
}

impl Shop {
    /// Starts it with `env` on top of the test settings (the database gauges read every second, a small pool)
    /// and waits until it is ready.
    pub async fn start(db: &str, env: &[(&str, &str)]) -> Shop {
        let (http, metrics) = (free_port(), free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        // one open file for both streams, so they append to each other
        let out = log.reopen().unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = crate::process::vpnshop(db);
        cmd.arg("serve")
            .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{http}"))
            .env("VPNSHOP__METRICS__ADDR", format!("127.0.0.1:{metrics}"))
            .env("VPNSHOP__METRICS__COLLECT_INTERVAL_SECS", "1")
            .env("VPNSHOP__METRICS__COLLECT_TIMEOUT_MS", "900")
            // few connections: tests share one PostgreSQL (max_connections 100) with other processes
            .env("VPNSHOP__DATABASE__MAX_CONNECTIONS", "6")
            .env("VPNSHOP__DATABASE__PUBLIC_CONNECTIONS", "2")
            .env("VPNSHOP__JOBS__WORKERS", "2")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let shop = Shop {
            child: cmd.spawn().expect("start vpnshop serve"),
            log,
            http: format!("http://127.0.0.1:{http}"),
            metrics: format!("http://127.0.0.1:{metrics}/metrics"),
            client: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let ready = shop.client.get(format!("{}/readyz", shop.http)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return shop;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "vpnshop serve did not become ready:\n{}", shop.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub async fn scrape(&self) -> String {
        let res = self.client.get(&self.metrics).send().await.expect("scrape /metrics");
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// Scrapes until `done` holds for the samples (or fails after 30 s, showing `what` and the last scrape).
    pub async fn scrape_until(&self, what: &str, done: impl Fn(&Samples) -> bool) -> Samples {
        let started = Instant::now();
        loop {
            let samples = Samples::parse(&self.scrape().await);
            if done(&samples) {
                return samples;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never saw {what}:\n{}", samples.text);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scrape: each sample's value by its series (`name{labels}` exactly as exposed), and the text.
pub struct Samples {
    pub series: BTreeMap<String, f64>,
    pub text: String,
}

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(series, value)| (series.to_owned(), value.parse().unwrap_or(f64::NAN)))
            .collect();
        Samples { series, text: text.to_owned() }
    }

    /// The value of one series (`None` when not exposed).
    pub fn get(&self, series: &str) -> Option<f64> {
        self.series.get(series).copied()
    }

    /// Every sample name (histogram parts as `_bucket`, `_sum`, `_count`).
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.series.keys().map(|s| s.split('{').next().unwrap_or(s).to_owned()).collect()
    }
}
