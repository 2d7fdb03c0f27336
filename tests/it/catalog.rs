//! Seeding the plan catalogue: idempotent, the full cross product, prices that follow the rule, and price
//! changes that never touch what was already sold.

use sqlx::PgPool;
use vpnshop::services::catalog::{self, Catalog, SeedReport};

use crate::helpers::manifest_dir;

fn shipped() -> Catalog {
    Catalog::load(&manifest_dir().join("config/plans.toml")).unwrap()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn price(pool: &PgPool, code: &str, currency: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT amount_minor FROM plan_prices pp JOIN plans p ON p.id = pp.plan_id WHERE p.code = $1 AND pp.currency = $2",
    )
    .bind(code)
    .bind(currency)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn seeding_yields_the_full_cross_product(pool: PgPool) {
    let report = catalog::seed(&pool, &shipped()).await.unwrap();
    assert_eq!(report.locations_added, 4);
    assert_eq!(report.plans_added, 4 * 4 * 4 * 4);
    assert_eq!(report.prices_added, 256 * 3);
    assert_eq!(count(&pool, "SELECT count(*) FROM plans WHERE active").await, 256);
    assert_eq!(count(&pool, "SELECT count(*) FROM plan_prices").await, 768);
    assert_eq!(count(&pool, "SELECT count(*) FROM plans WHERE data_cap_bytes IS NULL").await, 64, "unlimited tier");
    assert_eq!(
        count(&pool, "SELECT count(DISTINCT (location_code, duration_days, seats, data_cap_bytes)) FROM plans").await,
        256
    );
    assert_eq!(price(&pool, "de-30d-1dev-50gb", "USD").await, 299);
    assert_eq!(price(&pool, "us-365d-5dev-unl", "IRR").await, 255_200_000);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn seeding_twice_changes_nothing(pool: PgPool) {
    let catalog = shipped();
    catalog::seed(&pool, &catalog).await.unwrap();
    let before: Vec<(i64, String, i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT plan_id, currency, amount_minor, updated_at FROM plan_prices ORDER BY 1, 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    let stamp: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(updated_at) FROM plans").fetch_one(&pool).await.unwrap();
    let second = catalog::seed(&pool, &catalog).await.unwrap();
    assert_eq!(second, SeedReport::default(), "a second run reports no change");
    assert!(!second.changed_anything());
    let after: Vec<(i64, String, i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT plan_id, currency, amount_minor, updated_at FROM plan_prices ORDER BY 1, 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(before, after, "prices and their timestamps are untouched");
    let stamp_after: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(updated_at) FROM plans").fetch_one(&pool).await.unwrap();
    assert_eq!(stamp, stamp_after, "no row was rewritten");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_price_change_updates_prices_but_not_existing_orders(pool: PgPool) {
    catalog::seed(&pool, &shipped()).await.unwrap();
    // a customer ordered at today's price
    let user: i64 =
        sqlx::query_scalar("INSERT INTO users (telegram_id) VALUES (7) RETURNING id").fetch_one(&pool).await.unwrap();
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
         SELECT $1, p.id, pp.amount_minor, pp.currency, 'awaiting_payment'
           FROM plans p JOIN plan_prices pp ON pp.plan_id = p.id
          WHERE p.code = 'de-30d-1dev-50gb' AND pp.currency = 'USD' RETURNING id",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();

    let text = std::fs::read_to_string(manifest_dir().join("config/plans.toml")).unwrap();
    let dearer = Catalog::parse(&text.replace("base_monthly = \"2.50\"", "base_monthly = \"3.10\"")).unwrap();
    let report = catalog::seed(&pool, &dearer).await.unwrap();
    assert_eq!(report.plans_added, 0);
    assert!(report.prices_changed > 0);
    assert_eq!(report.prices_added, 0);
    // 3.10 -> 3.49
    assert_eq!(price(&pool, "de-30d-1dev-50gb", "USD").await, 349);
    let kept: i64 =
        sqlx::query_scalar("SELECT amount_minor FROM orders WHERE id = $1").bind(order).fetch_one(&pool).await.unwrap();
    assert_eq!(kept, 299, "the order keeps its price snapshot");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn dropped_combinations_are_retired_and_come_back(pool: PgPool) {
    catalog::seed(&pool, &shipped()).await.unwrap();
    let text = std::fs::read_to_string(manifest_dir().join("config/plans.toml")).unwrap();
    // drop the 5-device tier
    let fewer = text.replace("[[seats]]\ndevices = 5\nfactor = \"3\"\n", "");
    assert_ne!(fewer, text, "the test edit applies");
    let report = catalog::seed(&pool, &Catalog::parse(&fewer).unwrap()).await.unwrap();
    assert_eq!(report.plans_retired, 64);
    assert_eq!(count(&pool, "SELECT count(*) FROM plans WHERE active").await, 192);
    assert_eq!(count(&pool, "SELECT count(*) FROM plans").await, 256, "rows are kept, never deleted");
    assert_eq!(catalog::list(&pool, false).await.unwrap().len(), 192);
    assert_eq!(catalog::list(&pool, true).await.unwrap().len(), 256);

    let back = catalog::seed(&pool, &shipped()).await.unwrap();
    assert_eq!(back.plans_updated, 64);
    assert_eq!(back.plans_added, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM plans WHERE active").await, 256);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn concurrent_seeds_do_not_duplicate(pool: PgPool) {
    let catalog = shipped();
    let (a, b) = tokio::join!(catalog::seed(&pool, &catalog), catalog::seed(&pool, &catalog));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.plans_added + b.plans_added, 256, "exactly one run inserted the plans");
    assert_eq!(count(&pool, "SELECT count(*) FROM plans").await, 256);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_listing_is_in_catalogue_order_with_prices(pool: PgPool) {
    catalog::seed(&pool, &shipped()).await.unwrap();
    let plans = catalog::list(&pool, false).await.unwrap();
    assert_eq!(plans[0].code, "de-30d-1dev-50gb");
    assert_eq!(plans[0].prices.len(), 3);
    assert_eq!(plans.last().unwrap().code, "us-365d-5dev-unl");
}
