//! The TLS certificates of a node's inbounds, read for real: a node (real sshd + v2ray) serves a TLS inbound
//! with a certificate made by the `openssl` CLI that ends in 5 days. The node sync records its end, the database
//! gauge and the metric show it, the admins get exactly one alert however often the node is synced, and
//! `server test` reports it; a certificate gone from the node fails no sync and is reported by `server test`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vpnshop::domain::inbound::{InboundSpec, Security};
use vpnshop::domain::server::Protocol;
use vpnshop::provision::NodeError;
use vpnshop::services::nodes::probe::{CERTIFICATE, INBOUND_PORT, Outcome};
use vpnshop::services::nodes::{SyncError, SyncReport};
use vpnshop::services::servers::{self, Actor};

use super::{Shop, shop, wait_node_synced};
use crate::support::{free_port, node_tools_present};

/// A self-signed certificate for `node.test` valid for `days` days, made by the openssl CLI in `dir`; returns
/// (cert path, key path, its notAfter as openssl prints it).
fn certificate(dir: &Path, days: u32) -> (String, String, DateTime<Utc>) {
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=node.test", "-addext", "subjectAltName=DNS:node.test", "-days", &days.to_string()])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (apt-get install -y openssl)");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    let end = Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(&cert).output().unwrap();
    let text = String::from_utf8(end.stdout).unwrap();
    // notAfter=Dec  8 13:43:43 2026 GMT
    let when = text.trim().strip_prefix("notAfter=").expect("openssl's enddate line").replace("  ", " ");
    let not_after = NaiveDateTime::parse_from_str(&when, "%b %d %H:%M:%S %Y GMT").expect("openssl's date").and_utc();
    (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned(), not_after)
}

/// One node sync as the sweep runs it, waiting out a sync in progress. Right after the core restarted (new
/// inbounds), its API may drop the first connection: that is retried a few times, as the next sweep would.
async fn reconcile(shop: &Shop) -> SyncReport {
    let mut unreachable = 0;
    loop {
        match shop.app.state.nodes.reconcile(shop.server_id).await {
            Err(SyncError::Busy) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(SyncError::Node(NodeError::Unreachable(_))) if unreachable < 3 => {
                unreachable += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other.expect("the node sync succeeds"),
        }
    }
}

/// (tls_not_after, tls_checked_at) of the node.
async fn recorded(pool: &PgPool, id: i64) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    sqlx::query_as("SELECT tls_not_after, tls_checked_at FROM servers WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Makes the node's certificates due to be read at its next sync (as an hour passing would).
async fn make_due(pool: &PgPool, id: i64) {
    sqlx::query("UPDATE servers SET tls_checked_at = NULL WHERE id = $1").bind(id).execute(pool).await.unwrap();
}

async fn certificate_alerts(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload->>'text' FROM jobs WHERE kind = 'notify.admins' AND payload->>'text' LIKE '%TLS certificate%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The shop's exposition as every instance renders it (read from the database by its collector).
async fn exposition(pool: &PgPool, wanted: &str) -> String {
    let exposition = vpnshop::metrics::Exposition::new(None);
    let cancel = CancellationToken::new();
    let collector = tokio::spawn(exposition.clone().collect(
        pool.clone(),
        Duration::from_millis(50),
        Duration::from_secs(5),
        cancel.clone(),
    ));
    let started = std::time::Instant::now();
    let mut text = String::new();
    while started.elapsed() < Duration::from_secs(10) {
        text.clear();
        exposition.render_into(&mut text);
        if text.contains(wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    collector.await.unwrap();
    text
}

/// The test node with a second inbound, VMess over TCP with TLS, whose certificate (made by openssl) ends in
/// `days` days; synced, its core up. Returns the inbound, its certificate's path and notAfter, and the
/// directory holding the files.
async fn with_tls_inbound(shop: &Shop, days: u32) -> (InboundSpec, String, DateTime<Utc>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, not_after) = certificate(dir.path(), days);
    let tls = InboundSpec {
        security: Security::Tls,
        cert_path: Some(cert.clone()),
        key_path: Some(key),
        sni: Some("node.test".into()),
        ..InboundSpec::plain_tcp("vmess-tls", Protocol::Vmess, free_port())
    };
    let specs = vec![InboundSpec::plain_tcp("proxy", Protocol::Vmess, shop.node.proxy_port), tls.clone()];
    let jobs = &shop.app.state.settings.jobs;
    servers::set_inbounds(shop.pool(), shop.server_id, &specs, Actor::CLI, jobs).await.expect("TLS inbound");
    wait_node_synced(shop.pool(), shop.server_id).await;
    shop.node.wait_core().await;
    (tls, cert, not_after, dir)
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_certificate_near_its_end_is_recorded_exported_alerted_once_and_tested(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let (tls, cert, not_after, _dir) = with_tls_inbound(&shop, 5).await;

    // the sweep's sync reads it: its end is recorded, and the admins are told once
    reconcile(&shop).await;
    let (end, checked) = recorded(shop.pool(), shop.server_id).await;
    assert_eq!(end, Some(not_after), "the notAfter openssl printed");
    let checked = checked.expect("the check is stamped");
    let alerts = certificate_alerts(shop.pool()).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0].contains(&format!("node de-test ({cert}) ends on ")), "{}", alerts[0]);
    assert!(alerts[0].contains("(in 4 days)"), "{}", alerts[0]);

    // the next sweeps within the hour leave the node's certificates alone
    reconcile(&shop).await;
    assert_eq!(recorded(shop.pool(), shop.server_id).await, (Some(not_after), Some(checked)));
    // an hour later it is read again: same certificate, no second alert
    make_due(shop.pool(), shop.server_id).await;
    reconcile(&shop).await;
    let (end, again) = recorded(shop.pool(), shop.server_id).await;
    assert_eq!(end, Some(not_after));
    assert!(again.unwrap() > checked, "read again");
    assert_eq!(certificate_alerts(shop.pool()).await.len(), 1, "one alert per certificate");

    // the gauge every instance exports
    let figures = vpnshop::services::gauges::read(shop.pool(), Duration::from_secs(5)).await.unwrap();
    assert_eq!(figures.node_certificates, [("de-test".to_owned(), not_after.timestamp() as f64)]);
    let line =
        format!("vpnshop_node_certificate_expiry_timestamp_seconds{{node=\"de-test\"}} {}\n", not_after.timestamp());
    let text = exposition(shop.pool(), &line).await;
    assert!(text.contains(&line), "{text}");

    // server test: both ports answer at the node's address, the certificate is valid for 4 more days
    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    let ports: Vec<_> = checks.iter().filter(|c| c.name == INBOUND_PORT).collect();
    assert_eq!(ports.len(), 2, "{checks:#?}");
    assert!(ports.iter().all(|c| c.outcome == Outcome::Ok), "{checks:#?}");
    assert!(ports[1].detail.starts_with(&format!("vmess-tls: 127.0.0.1:{} accepts connections", tls.port)));
    let certificate = checks.iter().find(|c| c.name == CERTIFICATE).expect("a certificate check");
    assert_eq!(certificate.outcome, Outcome::Ok, "{checks:#?}");
    assert!(certificate.detail.contains(&format!("certificate {cert} valid until ")), "{}", certificate.detail);
    assert!(certificate.detail.contains("(4 days); renew it soon"), "{}", certificate.detail);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_certificate_gone_from_the_node_fails_no_sync_and_server_test_reports_it(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let shop = shop(pool).await;
    let (_, cert, not_after, _dir) = with_tls_inbound(&shop, 60).await;
    reconcile(&shop).await;
    assert_eq!(recorded(shop.pool(), shop.server_id).await.0, Some(not_after));
    assert!(certificate_alerts(shop.pool()).await.is_empty(), "60 days left: no alert");

    // the certificate disappears (the core keeps serving what it loaded)
    std::fs::remove_file(&cert).unwrap();
    make_due(shop.pool(), shop.server_id).await;
    let report = reconcile(&shop).await;
    assert!(!report.config_written, "{report:?}");
    assert_eq!(recorded(shop.pool(), shop.server_id).await, (Some(not_after), None), "nothing recorded");
    let health: String = sqlx::query_scalar("SELECT health::text FROM servers WHERE id = $1")
        .bind(shop.server_id)
        .fetch_one(shop.pool())
        .await
        .unwrap();
    assert_eq!(health, "ok", "a certificate is not the node's health");

    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    let certificate = checks.iter().find(|c| c.name == CERTIFICATE).expect("a certificate check");
    assert_eq!(certificate.outcome, Outcome::Failed, "{checks:#?}");
    assert!(certificate.detail.contains(&format!("{cert} does not exist on the node")), "{}", certificate.detail);

    // a file that is not a certificate: the same, with what is wrong
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let checks = shop.app.state.nodes.probe("de-test").await.unwrap();
    let certificate = checks.iter().find(|c| c.name == CERTIFICATE).unwrap();
    assert_eq!(certificate.outcome, Outcome::Failed, "{checks:#?}");
    assert!(certificate.detail.contains("no certificate in it"), "{}", certificate.detail);
}
