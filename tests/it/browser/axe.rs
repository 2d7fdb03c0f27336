//! The accessibility pass: axe-core (npm, installed by `scripts/dev` into `.data/node`, never shipped) injected
//! into the page under test and run there; its violations come back as [`Violation`]s.
//!
//! What fails a page ([`blocking_violations`]): any violation axe rates "serious" or "critical" (missing input
//! labels, too little colour contrast, …) and, whatever its rating, `heading-order` (axe calls skipped heading
//! levels "moderate", but the dashboard's issue asks for headings in order).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::Browser;
use crate::helpers::tools_required;

/// Rules that fail a page whatever impact axe gives them.
pub const ALWAYS_BLOCKING: &[&str] = &["heading-order"];

/// One rule the page breaks, with the elements that break it.
#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    /// axe's rule id, e.g. `label`, `color-contrast`, `heading-order`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    pub help: String,
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    pub nodes: Vec<AxeNode>,
}

/// An element that breaks a rule: its CSS selector and axe's explanation.
#[derive(Debug, Clone, Deserialize)]
pub struct AxeNode {
    pub target: String,
    pub summary: String,
}

impl Violation {
    /// Whether this violation fails the page (see the module docs).
    pub fn is_blocking(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical")) || ALWAYS_BLOCKING.contains(&self.id.as_str())
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let impact = self.impact.as_deref().unwrap_or("?");
        writeln!(f, "[{impact}] {}: {} ({})", self.id, self.help, self.help_url)?;
        for node in &self.nodes {
            writeln!(f, "    {}: {}", node.target, node.summary.replace('\n', " "))?;
        }
        Ok(())
    }
}

/// The violations that fail a page.
pub fn blocking_violations(violations: &[Violation]) -> Vec<&Violation> {
    violations.iter().filter(|v| v.is_blocking()).collect()
}

/// axe-core's browser bundle (`VPNSHOP_AXE_JS`, else where `scripts/dev` installs it).
fn axe_js_path() -> PathBuf {
    std::env::var_os("VPNSHOP_AXE_JS").map_or_else(
        || crate::helpers::manifest_dir().join(".data/node/node_modules/axe-core/axe.min.js"),
        PathBuf::from,
    )
}

/// Runs axe in the page and hands back `{id, impact, help, helpUrl, nodes: [{target, summary}]}` per violation.
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] })
  .then(r => done(r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({ target: n.target.map(String).join(' >> '), summary: n.failureSummary || '' })),
  }))))
  .catch(e => done({ error: String(e && e.stack || e) }));
"#;

impl Browser {
    /// Runs axe-core on the current page: every violation, whatever its impact. `None` (after printing
    /// "skipped") when axe-core is not installed and the run does not require the tools; panics when it does.
    pub async fn axe(&self) -> Option<Vec<Violation>> {
        let path = axe_js_path();
        let source = match std::fs::read_to_string(&path) {
            Ok(source) => source,
            Err(e) => {
                assert!(
                    !tools_required(),
                    "VPNSHOP_REQUIRE_TOOLS=1 but axe-core is missing at {}: {e}",
                    path.display()
                );
                eprintln!(
                    "skipped accessibility check: no axe-core at {} ({e}); scripts/dev test installs it",
                    path.display()
                );
                return None;
            }
        };
        // the page may have navigated since the last run: inject once per document
        if self.eval("return typeof window.axe === 'object'").await != Value::Bool(true) {
            self.eval(&source).await;
        }
        let result =
            self.client().execute_async(RUN_AXE, vec![]).await.unwrap_or_else(|e| panic!("axe.run failed: {e}"));
        if let Some(error) = result.get("error") {
            panic!("axe.run failed in the page: {error}");
        }
        Some(serde_json::from_value(result).unwrap_or_else(|e| panic!("unexpected axe result shape: {e}")))
    }

    /// Fails the test when axe finds a blocking violation on the current page (listing them all), naming the
    /// page; prints the non-blocking ones. Does nothing when axe-core is absent and not required.
    pub async fn assert_no_serious_axe(&self, page_name: &str) {
        let Some(violations) = self.axe().await else { return };
        let blocking = blocking_violations(&violations);
        let minor: Vec<String> = violations.iter().filter(|v| !v.is_blocking()).map(|v| v.to_string()).collect();
        if !minor.is_empty() {
            eprintln!("accessibility notes on {page_name} (not blocking):\n{}", minor.concat());
        }
        assert!(
            blocking.is_empty(),
            "{} accessibility violation(s) on {page_name} ({}):\n{}",
            blocking.len(),
            self.url().await,
            blocking.iter().map(|v| v.to_string()).collect::<String>()
        );
    }
}
