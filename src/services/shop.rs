//! The shop window the bot shows: locations with free nodes, and the plans of a location with prices (in the
//! customer's currency; converted through the catalogue's rates when a plan has no price of its own in it).

use std::collections::BTreeSet;

use sqlx::PgPool;

use crate::db;
use crate::domain::{Currency, DataCap, Language, Money, Rates};
use crate::error::{AppError, AppResult};

/// A location customers can buy.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationOffer {
    pub code: String,
    pub flag: String,
    pub labels: serde_json::Value,
    /// Enabled nodes there.
    pub servers: i64,
    /// Clients those nodes can still take.
    pub free_seats: i64,
}

impl LocationOffer {
    /// The location's name in `lang` (English when it has none).
    pub fn name(&self, lang: Language) -> String {
        label(&self.labels, lang, &self.code)
    }
}

/// A location's name in `lang` from its labels.
pub fn label(labels: &serde_json::Value, lang: Language, fallback: &str) -> String {
    labels.get(lang.as_str()).or_else(|| labels.get("en")).and_then(|v| v.as_str()).unwrap_or(fallback).to_owned()
}

/// One plan of a location.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOption {
    pub plan_id: i64,
    pub duration_days: i32,
    pub seats: i32,
    pub data: DataCap,
    pub prices: Vec<(Currency, i64)>,
}

impl PlanOption {
    /// The price in `currency` (see [`price_in`]).
    pub fn price_in(&self, currency: Currency, rates: Option<&Rates>) -> Option<Money> {
        price_in(&self.prices, currency, rates)
    }
}

/// A price in `currency`: the one listed in it, else one listed in another currency (the rates' base first)
/// converted through `rates`; `None` when neither is there.
pub fn price_in(prices: &[(Currency, i64)], currency: Currency, rates: Option<&Rates>) -> Option<Money> {
    let listed = |c: Currency| prices.iter().find(|(p, _)| *p == c).and_then(|(c, m)| Money::from_minor(*m, *c).ok());
    if let Some(price) = listed(currency) {
        return Some(price);
    }
    let rates = rates?;
    let source = listed(rates.base()).or_else(|| prices.iter().find_map(|(c, _)| listed(*c)))?;
    rates.convert(source, currency).ok()
}

/// Active locations with at least one plan on sale, with how many nodes serve them.
pub async fn locations(pool: &PgPool) -> AppResult<Vec<LocationOffer>> {
    let availability = db::servers::availability(pool).await?;
    let plans = db::plans::list(pool, true).await?;
    let sold: BTreeSet<&str> = plans.iter().map(|p| p.location_code.as_str()).collect();
    Ok(db::locations::list(pool)
        .await?
        .into_iter()
        .filter(|l| l.active && sold.contains(l.code.as_str()))
        .map(|l| {
            let (servers, free_seats) =
                availability.iter().find(|(code, _, _)| *code == l.code).map(|(_, s, f)| (*s, *f)).unwrap_or((0, 0));
            LocationOffer { code: l.code, flag: l.flag, labels: l.labels, servers, free_seats }
        })
        .collect())
}

pub async fn location(pool: &PgPool, code: &str) -> AppResult<LocationOffer> {
    locations(pool).await?.into_iter().find(|l| l.code == code).ok_or(AppError::NotFound("location"))
}

/// The plans on sale in a location, in catalogue order.
pub async fn plans_in(pool: &PgPool, location: &str) -> AppResult<Vec<PlanOption>> {
    Ok(db::plans::list(pool, true)
        .await?
        .into_iter()
        .filter(|p| p.location_code == location)
        .filter_map(|p| {
            Some(PlanOption {
                plan_id: p.id,
                duration_days: p.duration_days,
                seats: p.seats,
                data: DataCap::from_db(p.data_cap_bytes).ok()?,
                prices: p.prices,
            })
        })
        .collect())
}

/// Distinct values in first-seen order.
pub fn distinct<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}
