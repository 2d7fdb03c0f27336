//! deploy/prometheus and deploy/grafana are valid for the tools that load them: promtool checks the rules and
//! the example configuration, runs the rule tests, and parses every query of the dashboard.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{manifest_dir, tools_required};

fn deploy(path: &str) -> PathBuf {
    manifest_dir().join("deploy").join(path)
}

/// Runs promtool; `None` when it is not installed and the run does not require it (then the test is skipped).
fn promtool(args: &[&str], dir: &Path) -> Option<String> {
    match Command::new("promtool").args(args).current_dir(dir).output() {
        Ok(out) => {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
            Some(text)
        }
        Err(e) if !tools_required() => {
            eprintln!("skipping: promtool cannot run: {e} (scripts/dev test installs it)");
            None
        }
        Err(e) => panic!("promtool is required but cannot run: {e}"),
    }
}

/// The alert names of alerts.yml.
pub fn alert_names() -> Vec<String> {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let alert = regex::Regex::new(r"(?m)^\s*- alert: (\w+)\s*$").unwrap();
    alert.captures_iter(&rules).map(|c| c[1].to_owned()).collect()
}

#[test]
fn the_alerting_rules_pass_promtool_and_every_alert_is_tested_firing_and_quiet() {
    let dir = deploy("prometheus");
    let Some(checked) = promtool(&["check", "rules", "alerts.yml"], &dir) else { return };
    let names = alert_names();
    assert!(checked.contains(&format!("SUCCESS: {} rules found", names.len())), "{checked}");
    promtool(&["test", "rules", "alerts_test.yml"], &dir);
    promtool(&["check", "config", "prometheus.yml"], &dir);

    // a rule test only covers what it names: each alert needs a case where it fires and one where it does not
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    for name in &names {
        let case = |quiet: bool| {
            let tail = if quiet { r"exp_alerts: \[\]" } else { r"exp_alerts:\s*\n\s*- exp_labels:" };
            regex::Regex::new(&format!(r"alertname: {name}\s*\n\s*{tail}")).unwrap().is_match(&tests)
        };
        assert!(case(false), "alerts_test.yml has no case where {name} fires");
        assert!(case(true), "alerts_test.yml has no case where {name} stays quiet");
    }
    // and each links to its section of docs/operations.md
    let ops = std::fs::read_to_string(manifest_dir().join("docs/operations.md")).unwrap();
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    for name in &names {
        let anchor = name.to_lowercase();
        assert!(rules.contains(&format!("docs/operations.md#{anchor}\"")), "{name} has no runbook link");
        assert!(ops.contains(&format!("\n### {name}\n")), "docs/operations.md has no section `### {name}`");
    }
}

/// Every PromQL query of the dashboard, with Grafana's variables replaced by values Prometheus parses.
pub fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/vpnshop.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("a target without expr: {target}"));
            queries.push(expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$instance", ".*"));
        }
    }
    queries
}

#[test]
fn the_dashboard_imports_with_any_prometheus_and_every_query_parses() {
    let text = std::fs::read_to_string(deploy("grafana/vpnshop.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS", "asks for a data source on import");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "or takes it as a variable"
    );
    for panel in dashboard["panels"].as_array().unwrap().iter().filter(|p| p["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {}", panel["title"]);
        assert!(panel["targets"].as_array().is_some_and(|t| !t.is_empty()), "panel {} has no query", panel["title"]);
    }
    // promtool parses PromQL when it checks rules: one recording rule per query
    let queries = dashboard_queries();
    assert!(queries.len() >= 30, "{} queries", queries.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(q).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    if let Some(out) = promtool(&["check", "rules", "dashboard.yml"], dir.path()) {
        assert!(out.contains(&format!("SUCCESS: {} rules found", queries.len())), "{out}");
    }
}
