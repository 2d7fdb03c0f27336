//! The real `vpnshop serve` with its bot in webhook mode against a fake Telegram, JSON logs captured line by
//! line, and a way to deliver updates and wait until they are handled.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use crate::bot::SECRET;
use crate::helpers::database_url;
use crate::process::vpnshop;
use crate::support::{FakeTelegram, free_port};

pub struct Shop {
    pub port: u16,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Shop {
    /// Starts `vpnshop serve` on the test's database with the bot on `tg`, JSON logs at debug for our own
    /// modules, plus `env`; waits until it is ready.
    pub async fn start(pool: &PgPool, tg: &FakeTelegram, env: &[(&str, String)]) -> Shop {
        let port = free_port();
        let mut cmd: Command = vpnshop(&database_url(pool));
        cmd.arg("serve")
            .env("RUST_LOG", "info,vpnshop=debug")
            .env("VPNSHOP__LOG__FORMAT", "json")
            .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{port}"))
            .env("TELEGRAM_BOT_TOKEN", tg.token())
            .env("VPNSHOP__TELEGRAM__API_URL", tg.url().as_str())
            .env("VPNSHOP__TELEGRAM__PUBLIC_URL", "https://shop.example/")
            .env("VPNSHOP__TELEGRAM__WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("start vpnshop serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let shop = Shop { port, child: Some(child), lines, http: reqwest::Client::new() };
        let started = Instant::now();
        loop {
            let ready = shop.http.get(shop.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return shop;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "serve did not come up:\n{}", shop.log().join("\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every line printed so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The printed JSON log lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.log().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// POSTs an update to the webhook as Telegram does and waits until the shop has handled it.
    pub async fn deliver(&self, pool: &PgPool, update: &Value) {
        let res = self
            .http
            .post(self.url("/telegram/webhook"))
            .header("x-telegram-bot-api-secret-token", SECRET)
            .json(update)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{update}");
        let id = update["update_id"].as_i64().unwrap();
        let handled = "SELECT handled_at IS NOT NULL FROM telegram_updates WHERE update_id = $1";
        wait_for(pool, handled, id, "the update is handled").await;
    }

    /// Stops it with SIGTERM (the graceful stop that flushes the last spans) and waits for it to exit.
    pub async fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
        assert!(exit.success(), "exit status {exit:?}:\n{}", self.log().join("\n"));
        // the reader threads have seen the end of the pipes once the process is gone
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `query` (one bigint parameter, one boolean column) is true for `id`.
pub async fn wait_for(pool: &PgPool, query: &'static str, id: i64, what: &str) {
    let started = Instant::now();
    loop {
        let done: Option<bool> = sqlx::query_scalar(query).bind(id).fetch_optional(pool).await.unwrap();
        if done == Some(true) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}: not within 20 s ({query}, {id})");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
