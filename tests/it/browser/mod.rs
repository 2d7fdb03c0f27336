//! Browser tests: a real headless Chromium (Debian's `chromium` + `chromium-driver`) driven over WebDriver with
//! `fantoccini`, plus axe-core injected into the page as the accessibility checker (see [`axe`]).
//!
//! [`Browser::start`] skips a test (returns `None`, says so) when chromedriver or Chromium is missing, unless
//! the run requires every tool (`VPNSHOP_REQUIRE_TOOLS=1`, set by `scripts/dev test`, which installs them):
//! then it panics. The helpers panic with the page's URL and text on failure, since they only serve tests.
//! Screenshots go to `<crate>/target/screenshots/<name>.png`, one place whatever `CARGO_TARGET_DIR` says.

mod axe;
mod dashboard;
mod selftest;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub use axe::{AxeNode, Violation, blocking_violations};

use crate::helpers::{manifest_dir, tools_required};
use crate::support::{descendants, free_port, kill_pids, wait_for_port};

/// How long [`Browser::wait_for`] and friends wait for an element before failing the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// chromedriver (`VPNSHOP_CHROMEDRIVER`, else Debian's path).
fn chromedriver_path() -> PathBuf {
    std::env::var_os("VPNSHOP_CHROMEDRIVER").map_or_else(|| "/usr/bin/chromedriver".into(), PathBuf::from)
}

/// The browser binary (`VPNSHOP_CHROMIUM`, else Debian's wrapper script).
fn chromium_path() -> PathBuf {
    std::env::var_os("VPNSHOP_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Where screenshots are written: `<crate>/target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    manifest_dir().join("target/screenshots")
}

/// A headless Chromium session behind its own chromedriver; both (and the profile dir) go away on drop.
pub struct Browser {
    client: Client,
    driver: Driver,
}

/// The chromedriver process and the dir holding its log and Chromium's profile.
struct Driver {
    child: Child,
    dir: tempfile::TempDir,
}

impl Driver {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Chromium and its helpers are chromedriver's descendants: kill them all before the profile dir goes
        let pid = self.child.id();
        let mut pids = descendants(pid);
        pids.push(pid);
        kill_pids(&pids);
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session with a 1280×900 viewport.
    /// `None` (after printing "skipped") when the tools are missing and the run does not require them.
    pub async fn start() -> Option<Browser> {
        let (driver_bin, chromium) = (chromedriver_path(), chromium_path());
        let missing: Vec<String> =
            [&driver_bin, &chromium].into_iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
        if !missing.is_empty() {
            assert!(
                !tools_required(),
                "VPNSHOP_REQUIRE_TOOLS=1 but {missing:?} missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: {missing:?} not installed (scripts/dev test installs chromium and chromium-driver)");
            return None;
        }
        let dir = tempfile::tempdir().expect("browser temp dir");
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("chromedriver log file");
        let port = free_port();
        let child = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let driver = Driver { child, dir };
        if let Err(e) = wait_for_port(port, Duration::from_secs(15)).await {
            panic!("chromedriver did not come up: {e}\n{}", driver.log());
        }
        let caps = capabilities(&chromium, &driver.dir.path().join("profile"));
        let webdriver = format!("http://127.0.0.1:{port}");
        match ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&webdriver).await {
            Ok(client) => {
                let browser = Browser { client, driver };
                browser.set_viewport(1280, 900).await;
                Some(browser)
            }
            Err(e) => panic!("cannot open a Chromium session: {e}\n{}", driver.log()),
        }
    }

    /// The fantoccini client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// chromedriver's (and Chromium's) output so far, for failure messages.
    pub fn driver_log(&self) -> String {
        self.driver.log()
    }

    /// Opens `url` and waits for the page load.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The page's current URL.
    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("current url")
    }

    /// Waits (up to [`WAIT`]) for an element matching `css` and returns it.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// Waits up to `timeout` for an element matching `css` (polling every 50 ms).
    pub async fn wait_for_within(&self, css: &str, timeout: Duration) -> Element {
        match self.client.wait().at_most(timeout).every(Duration::from_millis(50)).for_element(Locator::Css(css)).await
        {
            Ok(el) => el,
            Err(e) => panic!("no element {css:?} after {timeout:?} ({e}) {}", self.where_am_i().await),
        }
    }

    /// Waits (up to [`WAIT`]) until the element matching `css` shows `needle` in its text; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            if start.elapsed() > WAIT {
                panic!("{css:?} never showed {needle:?} (last text {text:?}) {}", self.where_am_i().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replaces the value of the field matching `css` with `text` (typed as keys, so input events fire).
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        el.clear().await.unwrap_or_else(|e| panic!("cannot clear {css:?}: {e}"));
        el.send_keys(text).await.unwrap_or_else(|e| panic!("cannot type into {css:?}: {e}"));
    }

    /// Clicks the element matching `css` (waiting for it first).
    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        if let Err(e) = el.click().await {
            panic!("cannot click {css:?}: {e} {}", self.where_am_i().await);
        }
    }

    /// The rendered text of the element matching `css` (waiting for it first).
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap_or_else(|e| panic!("cannot read text of {css:?}: {e}"))
    }

    /// An attribute of the element matching `css` (waiting for it first).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.wait_for(css).await.attr(name).await.unwrap_or_else(|e| panic!("cannot read {name} of {css:?}: {e}"))
    }

    /// Runs `js` as a function body in the page and returns what it `return`s.
    pub async fn eval(&self, js: &str) -> Value {
        let start: String = js.chars().take(300).collect();
        self.client.execute(js, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{start}"))
    }

    /// Makes the page's viewport (`innerWidth`×`innerHeight`) exactly `width`×`height` CSS pixels.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("set window size");
        let extra =
            self.eval("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]").await;
        let (dx, dy) = (extra[0].as_u64().unwrap_or(0) as u32, extra[1].as_u64().unwrap_or(0) as u32);
        if dx > 0 || dy > 0 {
            self.client.set_window_size(width + dx, height + dy).await.expect("set window size");
        }
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The current URL and the start of the page's text, for failure messages.
    async fn where_am_i(&self) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let body = self.client.execute("return document.body ? document.body.innerText : ''", vec![]).await;
        let body = body.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        format!("on {url}; page text: {:?}", body.chars().take(1500).collect::<String>())
    }

    /// Ends the session cleanly (Chromium quits); dropping the browser kills whatever is left anyway.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// W3C capabilities for headless Chromium with a profile dir of our own (so nothing is left in /tmp).
fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-crash-reporter", "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}
