//! The plan catalogue: seeding plan rows from `config/plans.toml` and listing them.

mod file;
pub mod manage;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::PgPool;

pub use self::file::{Catalog, Location, PricedPlan};
use crate::db::locations::{LocationRow, Upserted};
use crate::db::{self, plans::PlanRow};
use crate::domain::Currency;
use crate::error::AppResult;

/// Serialises catalogue seeding across instances.
const SEED_LOCK: i64 = 0x7670_6e73_686f_7001;

/// What a seeding run changed. A second run over the same catalogue changes nothing (all zero).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeedReport {
    pub locations_added: u64,
    pub locations_updated: u64,
    pub locations_retired: u64,
    pub plans_added: u64,
    pub plans_updated: u64,
    pub plans_retired: u64,
    pub prices_added: u64,
    pub prices_changed: u64,
    pub prices_removed: u64,
}

impl SeedReport {
    pub fn changed_anything(&self) -> bool {
        *self != SeedReport::default()
    }
}

/// Makes the database's catalogue equal to `catalog`, in one transaction. New combinations are added,
/// missing ones deactivated (orders keep their price snapshot, so nothing that was sold changes). Plans made or
/// changed through the admin API (`managed`) are left as they are: not relisted, repriced or retired.
pub async fn seed(pool: &PgPool, catalog: &Catalog) -> AppResult<SeedReport> {
    let wanted = catalog.plans()?;
    let mut report = SeedReport::default();
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", SEED_LOCK).execute(&mut *tx).await?;

    for location in &catalog.locations {
        let row = LocationRow {
            code: location.code.clone(),
            flag: location.flag.clone(),
            labels: serde_json::to_value(&location.labels).map_err(anyhow::Error::from)?,
            sort_order: location.sort_order,
            active: true,
        };
        match db::locations::upsert(&mut tx, &row).await? {
            Upserted::Inserted => report.locations_added += 1,
            Upserted::Updated => report.locations_updated += 1,
            Upserted::Unchanged => {}
        }
    }
    let codes: Vec<String> = catalog.locations.iter().map(|l| l.code.clone()).collect();
    report.locations_retired = db::locations::retire_others(&mut tx, &codes).await?;

    let existing = db::plans::catalog_listings(&mut *tx).await?;
    let by_code: HashMap<&str, &db::plans::PlanListing> = existing.iter().map(|p| (p.code.as_str(), p)).collect();
    let mut new = Vec::new();
    let (mut relist_ids, mut relist_sorts) = (Vec::new(), Vec::new());
    for plan in &wanted {
        match by_code.get(plan.spec.code().as_str()) {
            None => new.push((plan.spec.clone(), plan.sort_order)),
            // made or changed through the admin API: the operator's word there stands
            Some(row) if row.managed => {}
            Some(row) if !row.active || row.sort_order != plan.sort_order => {
                relist_ids.push(row.id);
                relist_sorts.push(plan.sort_order);
            }
            Some(_) => {}
        }
    }
    let mut ids: HashMap<String, i64> = existing.iter().map(|p| (p.code.clone(), p.id)).collect();
    if !new.is_empty() {
        ids.extend(db::plans::insert_many(&mut tx, &new).await?.into_iter().map(|(id, code)| (code, id)));
    }
    report.plans_added = new.len() as u64;
    report.plans_updated = db::plans::set_listing(&mut tx, &relist_ids, true, &relist_sorts).await?;
    let wanted_codes: BTreeSet<String> = wanted.iter().map(|p| p.spec.code()).collect();
    let (retire_ids, retire_sorts): (Vec<i64>, Vec<i32>) = existing
        .iter()
        .filter(|p| p.active && !p.managed && !wanted_codes.contains(&p.code))
        .map(|p| (p.id, p.sort_order))
        .unzip();
    report.plans_retired = db::plans::set_listing(&mut tx, &retire_ids, false, &retire_sorts).await?;

    let current: BTreeMap<(i64, Currency), i64> =
        db::plans::all_prices(&mut *tx).await?.into_iter().map(|(id, c, a)| ((id, c), a)).collect();
    let mut desired = BTreeMap::new();
    let managed: BTreeSet<i64> = existing.iter().filter(|p| p.managed).map(|p| p.id).collect();
    for plan in &wanted {
        let id = ids[&plan.spec.code()];
        if managed.contains(&id) {
            continue;
        }
        for price in &plan.prices {
            desired.insert((id, price.currency()), price.minor());
        }
    }
    let mut upserts = Vec::new();
    for (&(id, currency), &amount) in &desired {
        match current.get(&(id, currency)) {
            None => report.prices_added += 1,
            Some(&old) if old != amount => report.prices_changed += 1,
            Some(_) => continue,
        }
        upserts.push((id, currency, amount));
    }
    db::plans::upsert_prices(&mut tx, &upserts).await?;
    // Prices of plans still sold, in currencies no longer sold, go; retired plans keep theirs for history.
    let sold: BTreeSet<i64> = desired.keys().map(|(id, _)| *id).collect();
    let stale: Vec<(i64, Currency)> =
        current.keys().filter(|(id, c)| sold.contains(id) && !desired.contains_key(&(*id, *c))).copied().collect();
    report.prices_removed = db::plans::delete_prices(&mut tx, &stale).await?;

    tx.commit().await?;
    Ok(report)
}

/// Plans with prices, in catalogue order.
pub async fn list(pool: &PgPool, include_retired: bool) -> AppResult<Vec<PlanRow>> {
    Ok(db::plans::list(pool, !include_retired).await?)
}

/// Seeds only when the database has no catalogue plans yet (used at start-up).
pub async fn seed_if_empty(pool: &PgPool, catalog: &Catalog) -> AppResult<Option<SeedReport>> {
    if db::plans::catalog_is_empty(pool).await? { Ok(Some(seed(pool, catalog).await?)) } else { Ok(None) }
}
