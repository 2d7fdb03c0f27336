//! Metering: raw counters from the core become accumulated usage; caps, the 80% reminder and hard cuts
//! follow from it.
//!
//! The core's counters count from zero each time it starts. Every reading carries the core's start time
//! (from its uptime, read before and after the counters): a reading from another run than the stored raw
//! counters is new in full, whatever its size — so a client that moves more after a restart than before it
//! loses nothing. Restarts the shop causes fold the counters in first and zero the stored ones after.
//! A node with subscriptions close to their cap is metered again soon (sooner the faster they move), and a
//! subscription that reaches its cap while moving data is cut off at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{METER_KIND, MeterReport, Nodes, SyncError, target};
use crate::db::servers::CoreRun;
use crate::db::{self, servers::NodeRow};
use crate::domain::status::Presence;
use crate::domain::status::SubscriptionStatus::Limited;
use crate::domain::traffic::{counter_delta, next_meter_in, percent_used};
use crate::provision::{NodeError, NodeTarget, UserCounter};
use crate::services::notify::{self, Notice, UserNotice};
use crate::services::queue::JobSpec;
use crate::services::subscriptions;

/// Two estimates of the core's start further apart than this are two runs (its uptime has whole seconds, and
/// a reading takes a moment).
const SAME_RUN_MS: i64 = 3000;

/// One reading of a node's counters, with the core run they belong to.
pub(super) struct Reading {
    pub counters: Vec<(String, UserCounter)>,
    /// When the core that holds these counters started (database clock, within a second) and its uptime.
    pub run: CoreRun,
}

/// Whether `now` is a later reading of the same core run as `stored`: its uptime did not go down (it only
/// grows while the core runs) and it started at the same time (within the precision of whole seconds).
fn same_run(stored: CoreRun, now: CoreRun) -> bool {
    now.uptime_secs >= stored.uptime_secs
        && (now.started_at - stored.started_at).num_milliseconds().abs() <= SAME_RUN_MS
}

/// What folding one reading of the counters into the database found.
#[derive(Debug, Default)]
pub(super) struct Folded {
    pub bytes: u64,
    /// Removed clients whose counters grew after their removal (plus grace).
    pub live_after_removal: Vec<i64>,
    /// Bytes each subscription (with clients wanted on the node) used in this reading.
    pub used: HashMap<i64, u64>,
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Nodes {
    /// Reads every user counter and the core's start time. The uptime is read before and after the counters,
    /// so counters of a core that restarted meanwhile are never taken for the new run's.
    pub(super) async fn read_counters(&self, row: &NodeRow, node: &NodeTarget) -> Result<Reading, SyncError> {
        for _ in 0..3 {
            let before = self.checked(row, "uptime", self.api.core_uptime(node).await).await?;
            let counters = self.checked(row, "user_counters", self.api.user_counters(node).await).await?;
            let after = self.checked(row, "uptime", self.api.core_uptime(node).await).await?;
            if after >= before {
                let now = db::now(&self.pool).await?;
                let started_at = now - chrono::Duration::from_std(after).unwrap_or_default();
                let uptime_secs = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
                return Ok(Reading { counters, run: CoreRun { started_at, uptime_secs } });
            }
        }
        Err(NodeError::Unreachable("the core restarted during each of three readings".into()).into())
    }

    /// Adds what each client used since the last reading to Postgres, in one transaction with the run the new
    /// raw counters belong to.
    pub(super) async fn fold(&self, row: &NodeRow, reading: &Reading) -> Result<Folded, SyncError> {
        let by_email: HashMap<&str, UserCounter> = reading.counters.iter().map(|(e, c)| (e.as_str(), *c)).collect();
        let grace = self.settings.removal_grace_secs as f64;
        let mut tx = self.pool.begin().await?;
        let stored = db::servers::core_run(&mut *tx, row.id).await?;
        // Some(true): the same run as the stored counters; Some(false): a new run, everything counts; None: not
        // known (never read, or we restarted the core and zeroed the stored counters): a counter below the
        // stored one means a restart
        let same_run = stored.map(|stored| same_run(stored, reading.run));
        let mut folded = Folded::default();
        let (mut ids, mut raw_up, mut raw_down, mut d_up, mut d_down) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut total_up, mut total_down) = (0u64, 0u64);
        for c in db::clients::metered_on(&mut *tx, row.id, grace).await? {
            let (last_up, last_down) = (c.last_raw_up.max(0) as u64, c.last_raw_down.max(0) as u64);
            let seen = by_email.get(c.email.as_str()).copied();
            let (now_raw, up, down) = match (same_run, seen) {
                (Some(false), seen) => {
                    let now = seen.unwrap_or_default();
                    (now, now.uplink, now.downlink)
                }
                // no counter yet in this run: nothing to add
                (Some(true), None) => continue,
                (None, None) => (UserCounter::default(), 0, 0),
                (_, Some(now)) => (now, counter_delta(last_up, now.uplink), counter_delta(last_down, now.downlink)),
            };
            if up + down == 0 && (now_raw.uplink, now_raw.downlink) == (last_up, last_down) {
                continue;
            }
            if up + down > 0 {
                if c.desired == Presence::Present {
                    *folded.used.entry(c.subscription_id).or_default() += up + down;
                } else if c.removed_before_grace {
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
            db::clients::record_traffic(&mut *tx, &ids, &raw_up, &raw_down, &d_up, &d_down).await?;
        }
        // the first estimate of a run's start is kept (later ones only differ by rounding); the uptime moves on
        let run = match (same_run, stored) {
            (Some(true), Some(stored)) => CoreRun { uptime_secs: reading.run.uptime_secs, ..stored },
            _ => reading.run,
        };
        db::servers::set_core_run(&mut *tx, row.id, Some(run)).await?;
        tx.commit().await?;
        metrics::counter!("vpnshop_traffic_bytes_total", "node" => row.name.clone(), "direction" => "up")
            .increment(total_up);
        metrics::counter!("vpnshop_traffic_bytes_total", "node" => row.name.clone(), "direction" => "down")
            .increment(total_down);
        folded.bytes = total_up + total_down;
        Ok(folded)
    }

    /// One metering pass over a node: usage into Postgres, subscriptions at their cap become `limited` (and
    /// one still moving data is cut off at once: removed and the core restarted), the 80% reminder goes out
    /// once, a removed client that is still moving data gets the core restarted (at most once per
    /// `hard_cut_min_interval_secs`), and the next pass is scheduled sooner when a cap is near.
    pub async fn meter(&self, server_id: i64) -> Result<MeterReport, SyncError> {
        let lock = self.lock(server_id).await?;
        let result = self.meter_locked(server_id).await;
        lock.release().await;
        result
    }

    async fn meter_locked(&self, server_id: i64) -> Result<MeterReport, SyncError> {
        let row = self.load(server_id).await?;
        let node = target(&row);
        let reading = self.read_counters(&row, &node).await?;
        let folded = self.fold(&row, &reading).await?;
        let since = db::servers::record_metered(&self.pool, row.id).await?.filter(|s| *s > 0.0);
        let mut report = MeterReport { bytes: folded.bytes, ..MeterReport::default() };

        let mut cut_off = HashSet::new();
        let mut next: Option<Duration> = None;
        for sub in db::subscriptions::capped_on(&self.pool, row.id).await? {
            let moved = folded.used.get(&sub.id).copied().unwrap_or(0);
            if sub.used >= sub.cap {
                let limited = subscriptions::end(&self.pool, sub.id, Limited, "data cap reached", &self.jobs).await?;
                report.limited += usize::from(limited);
                if limited && moved > 0 {
                    cut_off.insert(sub.id);
                }
                continue;
            }
            let pct = percent_used(sub.used, Some(sub.cap)).unwrap_or(0);
            if pct >= 80 && moved > 0 {
                let mut tx = self.pool.begin().await?;
                if db::subscriptions::take_data_reminder(&mut tx, sub.id).await? {
                    let notice = UserNotice {
                        user_id: sub.user_id,
                        subscription_id: sub.id,
                        notice: Notice::DataAlmostUsed { percent: pct.min(100) },
                    };
                    notify::enqueue_user(&mut *tx, &notice, &sub.cap.to_string(), &self.jobs).await?;
                    report.reminded += 1;
                }
                tx.commit().await?;
            }
            let rate = since.map(|s| moved as f64 / s).unwrap_or(0.0);
            let due = next_meter_in(sub.cap - sub.used, rate, pct, &self.settings.meter_near_cap());
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }

        report.live_after_removal = folded.live_after_removal.len();
        let cut_reason = match (cut_off.is_empty(), folded.live_after_removal.is_empty()) {
            (false, _) => Some("data_cap"),
            (true, false) => Some("hard_cut"),
            (true, true) => None,
        };
        if let Some(reason) = cut_reason {
            let min_gap = self.settings.hard_cut_min_interval_secs as f64;
            let due = db::servers::restart_allowed(&self.pool, row.id, min_gap).await?;
            tracing::warn!(node = %row.name, reason, capped = ?cut_off, live = ?folded.live_after_removal, restart = due,
                "clients that must be off the node are moving data (open connections)");
            if due {
                // exactly the wanted users, on the node and in its file, before the core restarts from that file
                self.apply_locked(&row, false).await?;
                self.restart(&row, &node, reason).await?;
                report.restarted = true;
            } else if !cut_off.is_empty() {
                // the core may not restart yet: take the clients off at least (new connections fail)
                self.apply_locked(&row, false).await?;
            }
        }
        if let Some(wait) = next {
            self.meter_again_in(row.id, wait).await?;
        }
        self.record(&row, &Ok(())).await;
        Ok(report)
    }

    /// Enqueues this node's next metering pass in `wait` (or moves a waiting one that far forward).
    async fn meter_again_in(&self, server_id: i64, wait: Duration) -> Result<(), SyncError> {
        JobSpec::new(METER_KIND, serde_json::json!({ "server_id": server_id }))
            .coalesce(format!("{METER_KIND}:{server_id}"))
            .after(wait)
            .enqueue(&self.pool, &self.jobs)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    fn run(started_ms: i64, uptime_secs: i64) -> CoreRun {
        CoreRun { started_at: Utc.timestamp_millis_opt(1_800_000_000_000 + started_ms).unwrap(), uptime_secs }
    }

    #[test]
    fn a_reading_belongs_to_the_stored_run_only_if_uptime_grew_and_the_start_matches() {
        // the same run read a minute later: its start estimate wobbles by rounding
        assert!(same_run(run(0, 5), run(900, 65)));
        assert!(same_run(run(0, 5), run(-400, 5)));
        // uptime went down: a restart, however close the starts look
        assert!(!same_run(run(0, 2), run(500, 1)));
        // started long after the stored run: a restart whose new uptime is already larger
        assert!(!same_run(run(0, 5), run(Duration::seconds(20).num_milliseconds(), 30)));
    }
}
