//! Traffic metering rules: how raw core counters become accumulated usage.

/// One reading of a raw counter against the last one stored. The core's counters only grow while it runs
/// and restart from zero when it restarts, so a value below the last one means "restarted": all of it is new.
pub fn counter_delta(last_raw: u64, now_raw: u64) -> u64 {
    if now_raw >= last_raw { now_raw - last_raw } else { now_raw }
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
    fn percent_used_saturates_and_ignores_unlimited() {
        assert_eq!(percent_used(80, Some(100)), Some(80));
        assert_eq!(percent_used(79, Some(100)), Some(79));
        assert_eq!(percent_used(10_000, Some(100)), Some(255));
        assert_eq!(percent_used(5, None), None);
        assert_eq!(percent_used(i64::MAX, Some(1)), Some(255), "no overflow");
    }
}
