//! The catalogue file (`config/plans.toml`): parsed, validated, and expanded into priced plans.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail, ensure};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::domain::plan::PriceFactors;
use crate::domain::{Currency, DataCap, Money, NiceRounding, PlanSpec, Rates};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    locations: Vec<RawLocation>,
    durations: Vec<RawDuration>,
    seats: Vec<RawSeats>,
    data: Vec<RawData>,
    pricing: RawPricing,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    code: String,
    flag: String,
    price_factor: Decimal,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDuration {
    days: i32,
    months: Decimal,
    discount: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeats {
    devices: i32,
    factor: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    gb: Option<i64>,
    mb: Option<i64>,
    factor: Decimal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPricing {
    base_currency: Currency,
    #[serde(default)]
    rates: BTreeMap<Currency, Decimal>,
    currencies: BTreeMap<Currency, RawCurrencyRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurrencyRule {
    base_monthly: Option<Decimal>,
    from: Option<Currency>,
    rounding: NiceRounding,
}

/// A location customers can pick.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub code: String,
    pub flag: String,
    pub labels: BTreeMap<String, String>,
    pub price_factor: Decimal,
    pub sort_order: i32,
}

/// How one currency's prices are made: its own monthly base, or another currency's raw price converted.
#[derive(Debug, Clone, PartialEq)]
enum PriceSource {
    Base(Decimal),
    ConvertedFrom(Currency),
}

/// The validated catalogue.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub locations: Vec<Location>,
    durations: Vec<RawDuration>,
    seats: Vec<RawSeats>,
    data: Vec<(DataCap, Decimal)>,
    rates: Rates,
    currencies: BTreeMap<Currency, (Currency, PriceSource, NiceRounding)>,
}

/// One plan of the cross product with its price in every currency.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedPlan {
    pub spec: PlanSpec,
    pub sort_order: i32,
    pub prices: Vec<Money>,
}

impl Catalog {
    pub fn load(path: &Path) -> anyhow::Result<Catalog> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading catalogue {}", path.display()))?;
        Catalog::parse(&text).with_context(|| format!("in catalogue {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Catalog> {
        let raw: RawCatalog = toml::from_str(text)?;
        Catalog::validate(raw)
    }

    fn validate(raw: RawCatalog) -> anyhow::Result<Catalog> {
        ensure!(!raw.locations.is_empty(), "at least one [[locations]] is required");
        ensure!(
            !raw.durations.is_empty() && !raw.seats.is_empty() && !raw.data.is_empty(),
            "durations, seats and data must not be empty"
        );
        let mut codes = BTreeSet::new();
        let mut locations = Vec::new();
        for (i, l) in raw.locations.into_iter().enumerate() {
            let valid_code = l.code.len() >= 2
                && l.code.len() <= 16
                && l.code.chars().take(2).all(|c| c.is_ascii_lowercase())
                && l.code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            ensure!(valid_code, "location code {:?} must be 2-16 lowercase letters, digits or '-'", l.code);
            ensure!(codes.insert(l.code.clone()), "location {:?} is listed twice", l.code);
            ensure!(l.labels.contains_key("en"), "location {:?} needs an English label (labels.en)", l.code);
            ensure!(l.price_factor > Decimal::ZERO, "location {:?}: price_factor must be positive", l.code);
            locations.push(Location {
                code: l.code,
                flag: l.flag,
                labels: l.labels,
                price_factor: l.price_factor,
                sort_order: i32::try_from(i * 10).unwrap_or(i32::MAX),
            });
        }
        let mut seen = BTreeSet::new();
        for d in &raw.durations {
            ensure!((1..=3660).contains(&d.days), "duration of {} days is out of range (1-3660)", d.days);
            ensure!(seen.insert(d.days), "duration {} days is listed twice", d.days);
            ensure!(d.months > Decimal::ZERO, "duration {} days: months must be positive", d.days);
            ensure!(
                d.discount >= Decimal::ZERO && d.discount < Decimal::ONE,
                "duration {} days: discount must be in [0, 1)",
                d.days
            );
        }
        let mut seen = BTreeSet::new();
        for s in &raw.seats {
            ensure!((1..=100).contains(&s.devices), "{} devices is out of range (1-100)", s.devices);
            ensure!(seen.insert(s.devices), "{} devices is listed twice", s.devices);
            ensure!(s.factor > Decimal::ZERO, "{} devices: factor must be positive", s.devices);
        }
        let mut data = Vec::new();
        for d in &raw.data {
            let cap = match (d.gb, d.mb) {
                (Some(gb), None) => DataCap::from_gb(gb).with_context(|| format!("data tier {gb} GB"))?,
                (None, Some(mb)) => DataCap::from_mb(mb).with_context(|| format!("data tier {mb} MB"))?,
                (None, None) => DataCap::Unlimited,
                (Some(gb), Some(mb)) => bail!("data tier: give gb ({gb}) or mb ({mb}), not both"),
            };
            ensure!(d.factor > Decimal::ZERO, "data tier {cap}: factor must be positive");
            ensure!(!data.iter().any(|(c, _)| *c == cap), "data tier {cap} is listed twice");
            data.push((cap, d.factor));
        }
        let rates = Rates::new(raw.pricing.base_currency, raw.pricing.rates.clone())?;
        let mut currencies = BTreeMap::new();
        for (currency, rule) in &raw.pricing.currencies {
            NiceRounding::new(rule.rounding.step_minor, rule.rounding.minus_minor)
                .with_context(|| format!("pricing.currencies.{currency}.rounding"))?;
            let source = match (rule.base_monthly, rule.from) {
                (Some(base), None) if base > Decimal::ZERO => PriceSource::Base(base),
                (None, Some(from)) => {
                    let from_rule = raw.pricing.currencies.get(&from);
                    ensure!(
                        from_rule.is_some_and(|r| r.base_monthly.is_some()),
                        "pricing.currencies.{currency}.from = {from:?} needs {from} to have its own base_monthly"
                    );
                    for c in [*currency, from] {
                        ensure!(
                            c == rates.base() || raw.pricing.rates.contains_key(&c),
                            "pricing.rates has no rate for {c} (needed to price {currency} from {from})"
                        );
                    }
                    PriceSource::ConvertedFrom(from)
                }
                _ => bail!("pricing.currencies.{currency} needs either a positive base_monthly or from, not both"),
            };
            currencies.insert(*currency, (*currency, source, rule.rounding));
        }
        ensure!(!currencies.is_empty(), "pricing.currencies must price at least one currency");
        Ok(Catalog { locations, durations: raw.durations, seats: raw.seats, data, rates, currencies })
    }

    /// The exchange rates of `[pricing.rates]`.
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.currencies.values().map(|(c, _, _)| *c)
    }

    /// The full cross product of locations × durations × devices × data, each priced in every currency.
    pub fn plans(&self) -> anyhow::Result<Vec<PricedPlan>> {
        let mut out = Vec::new();
        for location in &self.locations {
            for (di, duration) in self.durations.iter().enumerate() {
                for (si, seats) in self.seats.iter().enumerate() {
                    for (ti, (cap, data_factor)) in self.data.iter().enumerate() {
                        let factors = PriceFactors {
                            months: duration.months,
                            seat_factor: seats.factor,
                            data_factor: *data_factor,
                            location_factor: location.price_factor,
                            duration_discount: duration.discount,
                        };
                        let spec = PlanSpec {
                            location_code: location.code.clone(),
                            duration_days: duration.days,
                            seats: seats.devices,
                            data_cap: *cap,
                            is_trial: false,
                        };
                        let prices = self.price(&factors).with_context(|| format!("pricing plan {}", spec.code()))?;
                        let sort_order = i32::try_from(di * 10_000 + si * 100 + ti).unwrap_or(i32::MAX);
                        out.push(PricedPlan { spec, sort_order, prices });
                    }
                }
            }
        }
        Ok(out)
    }

    fn price(&self, factors: &PriceFactors) -> anyhow::Result<Vec<Money>> {
        let mut prices = Vec::new();
        for (currency, source, rounding) in self.currencies.values() {
            let raw = match source {
                PriceSource::Base(base) => factors.raw_price(*base),
                PriceSource::ConvertedFrom(from) => {
                    let Some((_, PriceSource::Base(base), _)) = self.currencies.get(from) else {
                        bail!("{currency} is priced from {from}, which has no base price");
                    };
                    self.rates.convert_major(factors.raw_price(*base), *from, *currency)?
                }
            };
            prices.push(rounding.apply(raw, *currency)?);
        }
        Ok(prices)
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
