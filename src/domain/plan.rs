//! Plans: what a customer buys (location, duration, devices, data) and the rule that prices them.

use std::fmt;

use rust_decimal::Decimal;

/// Bytes in one "GB" of a data cap. Like the V2Ray panels, we count binary gigabytes.
pub const BYTES_PER_GB: i64 = 1024 * 1024 * 1024;

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

    /// Whole GB when the cap is a whole number of GB (the catalogue's tiers always are).
    pub fn whole_gb(self) -> Option<i64> {
        match self {
            DataCap::Limited(b) if b % BYTES_PER_GB == 0 => Some(b / BYTES_PER_GB),
            _ => None,
        }
    }
}

impl fmt::Display for DataCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.whole_gb()) {
            (DataCap::Unlimited, _) => f.write_str("unlimited"),
            (_, Some(gb)) => write!(f, "{gb} GB"),
            (DataCap::Limited(b), None) => write!(f, "{:.2} GB", *b as f64 / BYTES_PER_GB as f64),
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
            cap => match cap.whole_gb() {
                Some(gb) => format!("{gb}gb"),
                None => format!("{}b", cap.to_db().unwrap_or_default()),
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
