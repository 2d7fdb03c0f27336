//! Plans: what a customer buys (location, duration, devices, data) and the rule that prices them.

use std::fmt;

use rust_decimal::Decimal;

/// Bytes in one "GB" of a data cap. Like the V2Ray panels, we count binary gigabytes.
pub const BYTES_PER_GB: i64 = 1024 * 1024 * 1024;
/// Bytes in one "MB" of a data cap (binary, like GB).
pub const BYTES_PER_MB: i64 = 1024 * 1024;

/// How much traffic a plan includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum DataCap {
    /// A cap in bytes, always positive.
    Limited(i64),
    Unlimited,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a data cap must be a positive number of bytes, got {0}")]
pub struct InvalidDataCap(pub i64);

impl DataCap {
    pub fn from_gb(gb: i64) -> Result<DataCap, InvalidDataCap> {
        gb.checked_mul(BYTES_PER_GB).filter(|bytes| *bytes > 0).map(DataCap::Limited).ok_or(InvalidDataCap(gb))
    }

    /// A cap in MB (small trial and plan caps: 500 MB).
    pub fn from_mb(mb: i64) -> Result<DataCap, InvalidDataCap> {
        mb.checked_mul(BYTES_PER_MB).filter(|bytes| *bytes > 0).map(DataCap::Limited).ok_or(InvalidDataCap(mb))
    }

    /// The database form: `NULL` means unlimited.
    pub fn from_db(bytes: Option<i64>) -> Result<DataCap, InvalidDataCap> {
        match bytes {
            None => Ok(DataCap::Unlimited),
            Some(b) if b > 0 => Ok(DataCap::Limited(b)),
            Some(b) => Err(InvalidDataCap(b)),
        }
    }

    pub fn to_db(self) -> Option<i64> {
        match self {
            DataCap::Limited(b) => Some(b),
            DataCap::Unlimited => None,
        }
    }

    /// Whole GB when the cap is a whole number of GB.
    pub fn whole_gb(self) -> Option<i64> {
        match self {
            DataCap::Limited(b) if b % BYTES_PER_GB == 0 => Some(b / BYTES_PER_GB),
            _ => None,
        }
    }

    /// Whole MB when the cap is a whole number of MB (every cap of the catalogue and the trial is).
    pub fn whole_mb(self) -> Option<i64> {
        match self {
            DataCap::Limited(b) if b % BYTES_PER_MB == 0 => Some(b / BYTES_PER_MB),
            _ => None,
        }
    }
}

impl fmt::Display for DataCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.whole_gb(), self.whole_mb()) {
            (DataCap::Unlimited, ..) => f.write_str("unlimited"),
            (_, Some(gb), _) => write!(f, "{gb} GB"),
            (_, None, Some(mb)) => write!(f, "{mb} MB"),
            (DataCap::Limited(b), None, None) => write!(f, "{b} bytes"),
        }
    }
}

/// The natural key of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanSpec {
    pub location_code: String,
    pub duration_days: i32,
    pub seats: i32,
    pub data_cap: DataCap,
    pub is_trial: bool,
}

impl PlanSpec {
    /// A short stable code, e.g. `de-30d-2dev-100gb` or `nl-trial-1d-1dev-1gb`.
    pub fn code(&self) -> String {
        let data = match self.data_cap {
            DataCap::Unlimited => "unl".to_owned(),
            cap => match (cap.whole_gb(), cap.whole_mb()) {
                (Some(gb), _) => format!("{gb}gb"),
                (None, Some(mb)) => format!("{mb}mb"),
                (None, None) => format!("{}b", cap.to_db().unwrap_or_default()),
            },
        };
        let trial = if self.is_trial { "trial-" } else { "" };
        format!("{}-{trial}{}d-{}dev-{data}", self.location_code, self.duration_days, self.seats)
    }
}

/// The price multipliers of one plan relative to the base (one device, 30 days, smallest factor 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceFactors {
    pub months: Decimal,
    pub seat_factor: Decimal,
    pub data_factor: Decimal,
    pub location_factor: Decimal,
    /// Fraction off for a longer duration, `0 ≤ discount < 1`.
    pub duration_discount: Decimal,
}

impl PriceFactors {
    /// The raw (unrounded) price for a monthly base price.
    pub fn raw_price(&self, base_monthly: Decimal) -> Decimal {
        base_monthly
            * self.months
            * self.seat_factor
            * self.data_factor
            * self.location_factor
            * (Decimal::ONE - self.duration_discount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_caps_are_positive_and_round_trip_through_the_database_form() {
        assert_eq!(DataCap::from_gb(50).unwrap(), DataCap::Limited(50 * BYTES_PER_GB));
        assert!(DataCap::from_gb(0).is_err());
        assert!(DataCap::from_gb(i64::MAX).is_err(), "overflow is an error");
        assert_eq!(DataCap::from_db(None).unwrap(), DataCap::Unlimited);
        assert!(DataCap::from_db(Some(0)).is_err());
        let cap = DataCap::from_gb(100).unwrap();
        assert_eq!(DataCap::from_db(cap.to_db()).unwrap(), cap);
        assert_eq!(cap.to_string(), "100 GB");
    }

    #[test]
    fn caps_can_be_set_in_megabytes() {
        let cap = DataCap::from_mb(500).unwrap();
        assert_eq!(cap, DataCap::Limited(500 * 1024 * 1024));
        assert_eq!((cap.whole_gb(), cap.whole_mb()), (None, Some(500)));
        assert_eq!(cap.to_string(), "500 MB");
        assert_eq!(DataCap::from_mb(2048).unwrap(), DataCap::from_gb(2).unwrap(), "whole GB stay GB");
        assert_eq!(DataCap::from_mb(2048).unwrap().to_string(), "2 GB");
        assert!(DataCap::from_mb(0).is_err() && DataCap::from_mb(-1).is_err() && DataCap::from_mb(i64::MAX).is_err());
        let spec = PlanSpec { location_code: "nl".into(), duration_days: 1, seats: 1, data_cap: cap, is_trial: true };
        assert_eq!(spec.code(), "nl-trial-1d-1dev-500mb");
    }

    #[test]
    fn plan_codes_are_stable() {
        let spec = PlanSpec {
            location_code: "de".into(),
            duration_days: 90,
            seats: 2,
            data_cap: DataCap::from_gb(100).unwrap(),
            is_trial: false,
        };
        assert_eq!(spec.code(), "de-90d-2dev-100gb");
        let unl = PlanSpec { data_cap: DataCap::Unlimited, is_trial: true, ..spec };
        assert_eq!(unl.code(), "de-trial-90d-2dev-unl");
    }
}
