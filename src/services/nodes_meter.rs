//! Metering: raw counters from the core become accumulated usage; caps, the 80% reminder and hard cuts
//! follow from it.

use std::collections::{HashMap, HashSet};

use chrono::Utc;

use super::{MeterReport, Nodes, SyncError, target};
use crate::db::{self, servers::NodeRow};
use crate::domain::status::SubscriptionStatus::{self, Limited};
use crate::domain::traffic::{counter_delta, percent_used};
use crate::provision::UserCounter;
use crate::services::notify::{self, Notice, UserNotice};
use crate::services::subscriptions;

/// What folding one reading of the counters into the database found.
#[derive(Debug, Default)]
pub(super) struct Folded {
    pub bytes: u64,
    /// Removed clients whose counters grew after their removal (plus grace).
    pub live_after_removal: Vec<i64>,
    /// Subscriptions (with clients wanted on the node) that used data in this reading.
    pub used: HashSet<i64>,
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Nodes {
    /// Adds what each client used since the last reading to Postgres. A counter below its last value (or gone)
    /// means the core restarted: it counts from zero, nothing is lost or counted twice.
    pub(super) async fn fold(&self, row: &NodeRow, counters: &[(String, UserCounter)]) -> Result<Folded, SyncError> {
        let by_email: HashMap<&str, UserCounter> = counters.iter().map(|(e, c)| (e.as_str(), *c)).collect();
        let grace = chrono::Duration::seconds(i64::try_from(self.settings.removal_grace_secs).unwrap_or(0));
        let now = Utc::now();
        let mut folded = Folded::default();
        let (mut ids, mut raw_up, mut raw_down, mut d_up, mut d_down) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut total_up, mut total_down) = (0u64, 0u64);
        for c in db::clients::metered_on(&self.pool, row.id).await? {
            let now_raw = by_email.get(c.email.as_str()).copied().unwrap_or_default();
            let (last_up, last_down) = (c.last_raw_up.max(0) as u64, c.last_raw_down.max(0) as u64);
            if (now_raw.uplink, now_raw.downlink) == (last_up, last_down) {
                continue;
            }
            let (up, down) = (counter_delta(last_up, now_raw.uplink), counter_delta(last_down, now_raw.downlink));
            if up + down > 0 {
                if c.desired == "present" {
                    folded.used.insert(c.subscription_id);
                } else if c.node_state == "absent" && c.removed_from_node_at.is_some_and(|t| t + grace < now) {
                    folded.live_after_removal.push(c.id);
                }
            }
            total_up += up;
            total_down += down;
            ids.push(c.id);
            raw_up.push(as_i64(now_raw.uplink));
            raw_down.push(as_i64(now_raw.downlink));
            d_up.push(as_i64(up));
            d_down.push(as_i64(down));
        }
        if !ids.is_empty() {
            db::clients::record_traffic(&self.pool, &ids, &raw_up, &raw_down, &d_up, &d_down).await?;
        }
        metrics::counter!("vpnshop_traffic_bytes_total", "node" => row.name.clone(), "direction" => "up")
            .increment(total_up);
        metrics::counter!("vpnshop_traffic_bytes_total", "node" => row.name.clone(), "direction" => "down")
            .increment(total_down);
        folded.bytes = total_up + total_down;
        Ok(folded)
    }

    /// One metering pass over a node: usage into Postgres, subscriptions at their cap become `limited`,
    /// the 80% reminder goes out once, and a removed client that is still moving data gets the core restarted
    /// (at most once per `hard_cut_min_interval_secs`).
    pub async fn meter(&self, server_id: i64) -> Result<MeterReport, SyncError> {
        let _lock = self.lock(server_id).await?;
        let row = self.load(server_id).await?;
        let node = target(&row);
        let counters = self.checked(&row, "user_counters", self.api.user_counters(&node).await).await?;
        let folded = self.fold(&row, &counters).await?;
        let mut report = MeterReport { bytes: folded.bytes, ..MeterReport::default() };

        let used: Vec<i64> = folded.used.iter().copied().collect();
        for (sub_id, up, down) in db::clients::usage_of(&self.pool, &used).await? {
            let Some(sub) = db::subscriptions::find(&self.pool, sub_id).await? else { continue };
            if sub.status != SubscriptionStatus::Active {
                continue;
            }
            let spent = up.saturating_add(down);
            match (sub.data_cap_bytes, percent_used(spent, sub.data_cap_bytes)) {
                (Some(cap), _) if spent >= cap => {
                    let limited =
                        subscriptions::end(&self.pool, sub_id, Limited, "data cap reached", &self.jobs).await?;
                    report.limited += usize::from(limited);
                }
                (_, Some(pct)) if pct >= 80 => {
                    let mut tx = self.pool.begin().await?;
                    if db::subscriptions::take_data_reminder(&mut tx, sub_id).await? {
                        let notice = UserNotice {
                            user_id: sub.user_id,
                            subscription_id: sub_id,
                            notice: Notice::DataAlmostUsed { percent: pct.min(100) },
                        };
                        let occurrence = sub.data_cap_bytes.unwrap_or_default().to_string();
                        notify::enqueue_user(&mut *tx, &notice, &occurrence, &self.jobs).await?;
                        report.reminded += 1;
                    }
                    tx.commit().await?;
                }
                _ => {}
            }
        }

        report.live_after_removal = folded.live_after_removal.len();
        if !folded.live_after_removal.is_empty() {
            let min_gap =
                chrono::Duration::seconds(i64::try_from(self.settings.hard_cut_min_interval_secs).unwrap_or(300));
            let due = row.last_restart_at.is_none_or(|t| Utc::now() - t >= min_gap);
            tracing::warn!(node = %row.name, clients = ?folded.live_after_removal, restart = due,
                "removed clients are still moving data (open connections)");
            if due {
                // make sure the file has exactly the wanted users before the core restarts from it
                self.write_config(&row, &node, false).await?;
                self.restart(&row, &node, "hard_cut").await?;
                report.restarted = true;
            }
        }
        self.record(&row, &Ok(())).await;
        Ok(report)
    }
}
