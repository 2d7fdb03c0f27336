//! Metering: raw counters from the core become accumulated usage; caps, the 80% reminder and hard cuts
//! follow from it.
//!
//! The core's counters count from zero each time it starts. Every reading carries the core's uptime (read
//! before and after the counters) and when it was taken: a reading of another run than the stored raw
//! counters (see [`same_run`]) is new in full, whatever its size — so a client that moves more after a
//! restart than before it loses nothing. Restarts the shop causes fold the counters in first.
//! A node with subscriptions that move data close to their cap is metered again soon (sooner the faster they
//! move), and a subscription that reaches its cap while moving data is cut off at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

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

/// One reading of a node's counters, with the core run they belong to.
pub(super) struct Reading {
    pub counters: Vec<(String, UserCounter)>,
    /// The core's uptime at this reading, and when it was taken (database clock).
    pub run: CoreRun,
}

/// Whether `now` is a later reading of the run `stored` was read from. Within one run the uptime never goes
/// down and keeps pace with the time between two readings; a core that restarted after the stored reading has
/// either a smaller uptime or one clearly shorter than that time. The slack covers the uptime's whole seconds
/// and a reading that arrives late, so a slow reading never passes for a new run (which would count the whole
/// run again). When we restarted the core ourselves after the stored reading (`restarted_at`), an uptime no
/// longer than the time since then is the new run — and a restart command that did not really restart it
/// shows as the old run going on. Missed: a restart nobody told us of, within a few seconds of reading a core
/// that had only just started (a counter that went down still counts as a restart then).
fn same_run(stored: CoreRun, now: CoreRun, restarted_at: Option<DateTime<Utc>>) -> bool {
    const SLACK_SECS: f64 = 3.0;
    let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).num_milliseconds() as f64 / 1000.0;
    let uptime = now.uptime_secs as f64;
    if let Some(restarted) = restarted_at.filter(|r| *r > stored.read_at)
        && uptime <= secs(now.read_at, restarted) + 1.0
    {
        return false;
    }
    now.uptime_secs >= stored.uptime_secs && uptime + SLACK_SECS >= secs(now.read_at, stored.read_at)
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
                let read_at = db::now(&self.pool).await?;
                let uptime_secs = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
                return Ok(Reading { counters, run: CoreRun { read_at, uptime_secs } });
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
        // row-locked: two folds of one node never interleave, even if the node lock were lost
        let (stored, restarted_at) = db::servers::lock_core_run(&mut tx, row.id).await?;
        if stored.is_some_and(|s| reading.run.read_at < s.read_at) {
            // a reading older than the one already folded in (it waited somewhere): nothing new in it
            return Ok(Folded::default());
        }
        // Some(true): the same run as the stored counters; Some(false): a new run, everything counts; None: not
        // known yet (first reading, or an older shop's data): a counter below the stored one means a restart
        let same_run = stored.map(|stored| same_run(stored, reading.run, restarted_at));
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
                // (stale readings never get here): a counter below the stored one is a restart the run check
                // could not see (a core that had only just started), so it is new in full
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
        db::servers::set_core_run(&mut *tx, row.id, Some(reading.run)).await?;
        tx.commit().await?;
        tracing::debug!(node = %row.name, ?same_run, uptime = reading.run.uptime_secs, up = total_up, down = total_down,
            "counters folded");
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
    /// `hard_cut_min_interval_secs`; a capped one at most once per `cap_cut_min_interval_secs`, and the node is
    /// metered again the moment that allows), and the next pass is scheduled sooner when a cap is near.
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
        tracing::debug!(node = %row.name, bytes = folded.bytes, since, "metering pass");
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
            if moved == 0 {
                // an idle subscription near its cap is left to the regular sweep
                continue;
            }
            let rate = since.map(|s| moved as f64 / s).unwrap_or(0.0);
            let due = next_meter_in(sub.cap - sub.used, rate, pct, &self.settings.meter_near_cap());
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }

        report.live_after_removal = folded.live_after_removal.len();
        let live = &folded.live_after_removal;
        let cut_reason = match (cut_off.is_empty(), live.is_empty()) {
            (false, _) => Some("data_cap"),
            // still moving data after an earlier cap cut that could not restart the core yet
            (true, false) if db::clients::any_capped(&self.pool, live).await? => Some("data_cap"),
            (true, false) => Some("hard_cut"),
            (true, true) => None,
        };
        if let Some(reason) = cut_reason {
            // a client over its cap is cut off sooner than one that merely outlived its removal
            let min_gap = match reason {
                "data_cap" => self.settings.cap_cut_min_interval_secs,
                _ => self.settings.hard_cut_min_interval_secs,
            } as f64;
            let wait = db::servers::restart_wait(&self.pool, row.id, min_gap).await?;
            let due = wait <= 0.0;
            tracing::warn!(node = %row.name, reason, capped = ?cut_off, live = ?folded.live_after_removal, restart = due,
                "clients that must be off the node are moving data (open connections)");
            if due {
                // exactly the wanted users, on the node and in its file, before the core restarts from that file
                self.apply_locked(&row, false).await?;
                self.restart(&row, &node, reason).await?;
                report.restarted = true;
            } else if reason == "data_cap" {
                // the core may not restart yet: take the clients off at least (new connections fail), and look
                // again the moment it may (a capped client still moving data is then cut)
                self.apply_locked(&row, false).await?;
                let again = Duration::from_secs_f64(wait + 0.05);
                next = Some(next.map_or(again, |n| n.min(again)));
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
    use chrono::{TimeZone, Utc};

    use super::*;

    fn run(at_secs: i64, uptime_secs: i64) -> CoreRun {
        CoreRun { read_at: Utc.timestamp_opt(1_800_000_000 + at_secs, 0).unwrap(), uptime_secs }
    }

    #[test]
    fn a_reading_belongs_to_the_stored_run_only_if_the_uptime_kept_pace_with_the_clock() {
        let same = |a, b| same_run(a, b, None);
        // a day-old core read again a minute later, or with the reading 5 s late
        assert!(same(run(0, 86_400), run(60, 86_460)));
        assert!(same(run(0, 86_400), run(65, 86_460)));
        // a core that just started, read twice in a row (its uptime still 0)
        assert!(same(run(0, 0), run(0, 0)));
        assert!(same(run(0, 1), run(2, 2)));
        // uptime went down: a restart
        assert!(!same(run(0, 86_400), run(60, 30)));
        assert!(!same(run(0, 5), run(10, 3)));
        // a restart whose new uptime already passed the stored one: clearly shorter than the time between readings
        assert!(!same(run(0, 5), run(60, 40)));
    }

    #[test]
    fn a_restart_we_caused_starts_a_new_run_only_if_the_uptime_shows_it() {
        let at = |secs: i64| Some(Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap());
        // a young core read, restarted by us a second later, read again: a new run
        assert!(!same_run(run(0, 1), run(3, 1), at(1)));
        // the restart command returned but the core kept running: its uptime grew with the clock
        assert!(same_run(run(0, 40), run(10, 50), at(2)));
        // a restart before the stored reading is old news
        assert!(same_run(run(10, 5), run(12, 7), at(1)));
    }
}
