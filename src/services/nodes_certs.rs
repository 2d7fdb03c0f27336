//! The TLS certificates of a node's inbounds: the node sync reads them (at most once an hour per node), records
//! the earliest end in `servers.tls_not_after` (exported as `vpnshop_node_certificate_expiry_timestamp_seconds`
//! by every instance alike) and alerts the admins once per certificate that ends within
//! `provision.certificate_alert_days`. A certificate that cannot be read never fails the sync: it is a warning,
//! and `server test` says what is wrong.

use chrono::{DateTime, Utc};

use super::{Nodes, SyncError, inbounds};
use crate::db::{self, servers::NodeRow};
use crate::domain::inbound::{InboundSpec, Security};
use crate::provision::NodeTarget;
use crate::services::notify;

/// How often one node's certificates are read (the reconcile sweep itself runs every few minutes).
pub const CHECK_EVERY_SECS: f64 = 3600.0;

/// A TLS inbound's tag and its certificate's path on the node.
pub fn certificate_paths(specs: &[InboundSpec]) -> Vec<(&str, &str)> {
    specs
        .iter()
        .filter(|s| s.security == Security::Tls)
        .filter_map(|s| s.cert_path.as_deref().map(|path| (s.tag.as_str(), path)))
        .collect()
}

/// The admins' alert for a certificate ending at `not_after`, `left` from now (zero or less: it has ended).
pub fn alert_text(node: &str, path: &str, not_after: DateTime<Utc>, left: chrono::Duration) -> String {
    let when = not_after.format("%Y-%m-%d %H:%M UTC");
    let (ends, effect) = if left <= chrono::Duration::zero() {
        (format!("ended on {when}"), "customers' apps refuse its TLS inbounds now")
    } else {
        let days = match left.num_days() {
            0 => "within a day".to_owned(),
            1 => "in 1 day".to_owned(),
            n => format!("in {n} days"),
        };
        (format!("ends on {when} ({days})"), "customers' apps refuse its TLS inbounds once it has ended")
    };
    format!(
        "The TLS certificate of node {node} ({path}) {ends}; {effect}. Renew it on the node (certbot renew, or copy \
         the new files and restart the core: deploy/node/README.md); the next node sync reads it again within an hour."
    )
}

impl Nodes {
    /// Reads the node's certificates when they are due, records the earliest end, alerts when it is near.
    /// Never fails: whatever goes wrong is a warning (the sync goes on, nothing is recorded).
    pub(super) async fn check_certificates(&self, row: &NodeRow, node: &NodeTarget) {
        if let Err(e) = self.check_certificates_due(row, node).await {
            tracing::warn!(node = %row.name, error = %e, "could not check the node's TLS certificates");
        }
    }

    async fn check_certificates_due(&self, row: &NodeRow, node: &NodeTarget) -> Result<(), SyncError> {
        if !db::servers::tls_check_due(&self.pool, row.id, CHECK_EVERY_SECS).await? {
            return Ok(());
        }
        let specs = inbounds(row)?;
        let mut earliest: Option<(DateTime<Utc>, &str)> = None;
        for (tag, path) in certificate_paths(&specs) {
            let read = self.api.tls_not_after(node, path).await;
            let label = if matches!(read, Ok(Some(_))) { "ok" } else { "error" };
            let node_name = row.name.clone();
            metrics::counter!(
                "vpnshop_node_operations_total", "node" => node_name, "op" => "tls_not_after", "result" => label
            )
            .increment(1);
            match read {
                Ok(Some(not_after)) => {
                    if earliest.is_none_or(|(t, _)| not_after < t) {
                        earliest = Some((not_after, path));
                    }
                }
                Ok(None) => {
                    let what = "the TLS certificate of an inbound is not on the node";
                    tracing::warn!(node = %row.name, inbound = tag, path, "{what}");
                    return Ok(());
                }
                Err(e) => {
                    let what = "cannot read the TLS certificate of an inbound";
                    tracing::warn!(node = %row.name, inbound = tag, path, error = %e, "{what}");
                    return Ok(());
                }
            }
        }
        db::servers::record_tls(&self.pool, row.id, earliest.map(|(t, _)| t)).await?;
        if let Some((not_after, path)) = earliest {
            self.alert_certificate(row, path, not_after).await?;
        }
        Ok(())
    }

    /// Alerts the admins, once per certificate, when it ends within `certificate_alert_days` (database clock).
    async fn alert_certificate(&self, row: &NodeRow, path: &str, not_after: DateTime<Utc>) -> Result<(), SyncError> {
        let left = not_after - db::now(&self.pool).await?;
        if left > chrono::Duration::days(i64::from(self.settings.certificate_alert_days)) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        if db::servers::claim_tls_alert(&mut *tx, row.id, not_after).await? {
            let key = format!("cert:{}:{}", row.id, not_after.timestamp());
            let text = alert_text(&row.name, path, not_after, left);
            notify::enqueue_admin_alert(&mut *tx, &key, &text, &self.jobs).await?;
            tracing::warn!(node = %row.name, path, %not_after, "a node's TLS certificate ends soon: admins alerted");
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::server::Protocol;

    #[test]
    fn only_tls_inbounds_have_certificates_to_read() {
        let tls = InboundSpec {
            security: Security::Tls,
            cert_path: Some("/etc/v2ray/tls/fullchain.pem".into()),
            key_path: Some("/etc/v2ray/tls/privkey.pem".into()),
            ..InboundSpec::plain_tcp("tls", Protocol::Vless, 443)
        };
        let plain = InboundSpec::plain_tcp("proxy", Protocol::Vmess, 10086);
        assert_eq!(certificate_paths(&[plain.clone(), tls]), [("tls", "/etc/v2ray/tls/fullchain.pem")]);
        assert!(certificate_paths(&[plain]).is_empty());
    }

    #[test]
    fn the_alert_says_when_and_what_to_do() {
        let left = chrono::Duration::days(4) + chrono::Duration::hours(2);
        let text = alert_text("de-1", "/etc/v2ray/tls/fullchain.pem", Utc::now() + left, left);
        assert!(text.contains("node de-1 (/etc/v2ray/tls/fullchain.pem) ends on "), "{text}");
        assert!(text.contains("(in 4 days)") && text.contains("certbot renew"), "{text}");
        let ago = chrono::Duration::hours(-3);
        let text = alert_text("de-1", "/c.pem", Utc::now() + ago, ago);
        assert!(text.contains("ended on") && text.contains("refuse its TLS inbounds now"), "{text}");
    }
}
