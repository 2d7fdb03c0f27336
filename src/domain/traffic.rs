//! Traffic metering rules: how raw core counters become accumulated usage, and how often to read them.

use std::time::Duration;

/// One reading of a raw counter against the last one stored. The core's counters only grow while it runs
/// and restart from zero when it restarts, so a value below the last one means "restarted": all of it is new.
pub fn counter_delta(last_raw: u64, now_raw: u64) -> u64 {
    if now_raw >= last_raw { now_raw - last_raw } else { now_raw }
}

/// How closely to watch subscriptions near their data cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearCap {
    /// From this share of the cap on, meter at least every `interval`.
    pub percent: u8,
    pub interval: Duration,
    /// Never meter one node more often than this.
    pub min_interval: Duration,
}

/// Predictions further out than this are left to the regular metering sweep.
const HORIZON: Duration = Duration::from_secs(60);

/// When to meter a node again for a subscription with `remaining` bytes left that moved `rate` bytes/s since
/// the last pass and used `percent` of its cap: half the time it would take to reach the cap (each pass halves
/// the distance, so one lands close before it), at most `near.interval` once `near.percent` is used, never
/// sooner than `near.min_interval`. `None` when the regular sweep comes soon enough.
pub fn next_meter_in(remaining: i64, rate: f64, percent: u8, near: &NearCap) -> Option<Duration> {
    let mut due = None;
    if rate > 0.0 && rate.is_finite() {
        let half_way = Duration::try_from_secs_f64(remaining.max(0) as f64 / rate / 2.0).unwrap_or(HORIZON);
        if half_way < HORIZON {
            due = Some(half_way);
        }
    }
    if percent >= near.percent {
        due = Some(due.map_or(near.interval, |d| d.min(near.interval)));
    }
    due.map(|d| d.max(near.min_interval))
}

/// Usage as a share of a cap, in whole percent (saturating; `None` for unlimited).
pub fn percent_used(used_bytes: i64, cap_bytes: Option<i64>) -> Option<u8> {
    let cap = cap_bytes.filter(|c| *c > 0)?;
    let pct = (i128::from(used_bytes.max(0)) * 100) / i128::from(cap);
    Some(u8::try_from(pct.min(255)).unwrap_or(u8::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_counters_add_the_difference() {
        assert_eq!(counter_delta(100, 250), 150);
        assert_eq!(counter_delta(0, 0), 0);
        assert_eq!(counter_delta(7, 7), 0);
    }

    #[test]
    fn a_counter_that_went_down_means_the_core_restarted() {
        // 1000 seen before the restart, 40 since: the 40 are new, the 1000 are not counted twice
        assert_eq!(counter_delta(1000, 40), 40);
        assert_eq!(counter_delta(1000, 0), 0);
    }

    #[test]
    fn nodes_near_a_cap_are_metered_sooner_the_faster_they_move() {
        let near = NearCap { percent: 90, interval: Duration::from_secs(2), min_interval: Duration::from_millis(250) };
        // far from the cap and idle: the regular sweep is enough
        assert_eq!(next_meter_in(1_000_000_000, 0.0, 10, &near), None);
        // far from the cap but fast: half the time to the cap (10 s away → 5 s)
        assert_eq!(next_meter_in(1_000_000_000, 100_000_000.0, 10, &near), Some(Duration::from_secs(5)));
        // a slow mover near its cap: at least every interval
        assert_eq!(next_meter_in(10_000_000, 1_000.0, 95, &near), Some(Duration::from_secs(2)));
        // idle near its cap: still watched
        assert_eq!(next_meter_in(10_000_000, 0.0, 95, &near), Some(Duration::from_secs(2)));
        // about to reach it: never more often than the floor
        assert_eq!(next_meter_in(1_000, 100_000_000.0, 99, &near), Some(Duration::from_millis(250)));
        // a prediction beyond the horizon is not scheduled; no division trouble at zero left
        assert_eq!(next_meter_in(100_000_000_000, 1.0, 50, &near), None);
        assert_eq!(next_meter_in(0, 5.0, 50, &near), Some(Duration::from_millis(250)));
    }

    #[test]
    fn percent_used_saturates_and_ignores_unlimited() {
        assert_eq!(percent_used(80, Some(100)), Some(80));
        assert_eq!(percent_used(79, Some(100)), Some(79));
        assert_eq!(percent_used(10_000, Some(100)), Some(255));
        assert_eq!(percent_used(5, None), None);
        assert_eq!(percent_used(i64::MAX, Some(1)), Some(255), "no overflow");
    }
}
