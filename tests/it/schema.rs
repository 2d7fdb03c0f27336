//! The schema protects money and state by itself: these inserts must be refused by the database.

use sqlx::PgPool;

/// A user, location, plan and order awaiting payment; returns (user_id, plan_id, order_id).
pub async fn fixture(pool: &PgPool) -> (i64, i64, i64) {
    let user: i64 =
        sqlx::query_scalar("INSERT INTO users (telegram_id) VALUES (1001) RETURNING id").fetch_one(pool).await.unwrap();
    sqlx::query("INSERT INTO locations (code, flag, labels) VALUES ('de', 'x', '{\"en\": \"Germany\"}')")
        .execute(pool)
        .await
        .unwrap();
    let plan: i64 = sqlx::query_scalar(
        "INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes)
         VALUES ('de-30d-1dev-50gb', 'de', 30, 1, 53687091200) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
         VALUES ($1, $2, 499, 'USD', 'awaiting_payment') RETURNING id",
    )
    .bind(user)
    .bind(plan)
    .fetch_one(pool)
    .await
    .unwrap();
    (user, plan, order)
}

fn constraint_of(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.constraint().unwrap_or(e.message()).to_owned(),
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_negative_or_zero_price_is_refused(pool: PgPool) {
    let (_, plan, _) = fixture(&pool).await;
    for amount in [-100_i64, 0] {
        let r = sqlx::query("INSERT INTO plan_prices (plan_id, currency, amount_minor) VALUES ($1, 'USD', $2)")
            .bind(plan)
            .bind(amount)
            .execute(&pool)
            .await;
        assert_eq!(constraint_of(r), "plan_prices_amount_minor_check");
    }
    let r = sqlx::query(
        "INSERT INTO payments (order_id, method, amount_minor, currency) SELECT id, 'card', -1, 'USD' FROM orders",
    )
    .execute(&pool)
    .await;
    assert_eq!(constraint_of(r), "payments_amount_minor_check");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_unknown_status_or_currency_is_refused(pool: PgPool) {
    let (_, _, order) = fixture(&pool).await;
    let r = sqlx::query("UPDATE orders SET status = 'shipped' WHERE id = $1").bind(order).execute(&pool).await;
    assert_eq!(constraint_of(r), "orders_status_check");
    let r = sqlx::query("INSERT INTO payments (order_id, method, status, amount_minor, currency) VALUES ($1, 'card', 'approved', 499, 'USD')")
        .bind(order)
        .execute(&pool)
        .await;
    assert_eq!(constraint_of(r), "payments_status_check");
    // a gateway payment cannot be "under review": that is a card-only state
    let r = sqlx::query("INSERT INTO payments (order_id, method, status, amount_minor, currency) VALUES ($1, 'stripe', 'under_review', 499, 'USD')")
        .bind(order)
        .execute(&pool)
        .await;
    assert_eq!(constraint_of(r), "payments_status_fits_method");
    let r = sqlx::query("UPDATE orders SET currency = 'BTC' WHERE id = $1").bind(order).execute(&pool).await;
    assert_eq!(constraint_of(r), "orders_currency_check");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_duplicate_receipt_is_refused(pool: PgPool) {
    let (_, _, order) = fixture(&pool).await;
    let insert = "INSERT INTO payments (order_id, method, status, amount_minor, currency, receipt_file_id, receipt_file_unique_id)
                  VALUES ($1, 'card', 'under_review', 499, 'USD', $2, 'AQADuniq')";
    sqlx::query(insert).bind(order).bind("file-1").execute(&pool).await.unwrap();
    let r = sqlx::query(insert).bind(order).bind("file-2").execute(&pool).await;
    assert_eq!(constraint_of(r), "payments_receipt_file_unique_id_key");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_duplicate_gateway_event_is_refused(pool: PgPool) {
    let insert = "INSERT INTO webhook_events (provider, event_id) VALUES ('stripe', 'evt_123')";
    sqlx::query(insert).execute(&pool).await.unwrap();
    let r = sqlx::query(insert).execute(&pool).await;
    assert_eq!(constraint_of(r), "webhook_events_pkey");
    // the same id from another provider is a different event
    sqlx::query("INSERT INTO webhook_events (provider, event_id) VALUES ('zarinpal', 'evt_123')")
        .execute(&pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn telegram_ids_and_client_uuids_are_unique(pool: PgPool) {
    fixture(&pool).await;
    let r = sqlx::query("INSERT INTO users (telegram_id) VALUES (1001)").execute(&pool).await;
    assert_eq!(constraint_of(r), "users_telegram_id_key");
    let r = sqlx::query("INSERT INTO users (telegram_id) VALUES (-5)").execute(&pool).await;
    assert_eq!(constraint_of(r), "users_telegram_id_check");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_user_has_one_draft_and_one_trial(pool: PgPool) {
    let (user, plan, _) = fixture(&pool).await;
    let draft = "INSERT INTO orders (user_id) VALUES ($1)";
    sqlx::query(draft).bind(user).execute(&pool).await.unwrap();
    let r = sqlx::query(draft).bind(user).execute(&pool).await;
    assert_eq!(constraint_of(r), "orders_one_draft_per_user");

    let trial = "INSERT INTO subscriptions (user_id, plan_id, location_code, is_trial, seats, duration_days, token)
                 VALUES ($1, $2, 'de', TRUE, 1, 1, md5(random()::text))";
    sqlx::query(trial).bind(user).bind(plan).execute(&pool).await.unwrap();
    let r = sqlx::query(trial).bind(user).bind(plan).execute(&pool).await;
    assert_eq!(constraint_of(r), "subscriptions_one_trial_per_user");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_order_past_draft_carries_its_price_snapshot(pool: PgPool) {
    let (user, plan, _) = fixture(&pool).await;
    let r = sqlx::query("INSERT INTO orders (user_id, plan_id, status) VALUES ($1, $2, 'awaiting_payment')")
        .bind(user)
        .bind(plan)
        .execute(&pool)
        .await;
    assert_eq!(constraint_of(r), "orders_priced_past_draft");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn client_uuids_are_unique(pool: PgPool) {
    let (user, plan, order) = fixture(&pool).await;
    let server: i64 = sqlx::query_scalar(
        "INSERT INTO servers (name, location_code, public_host, public_port, ssh_host, ssh_user, inbound_tag, capacity)
         VALUES ('de-1', 'de', 'h', 443, 'h', 'u', 'proxy', 10) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let sub: i64 = sqlx::query_scalar(
        "INSERT INTO subscriptions (user_id, order_id, plan_id, location_code, server_id, seats, duration_days, token)
         VALUES ($1, $2, $3, 'de', $4, 2, 30, md5(random()::text)) RETURNING id",
    )
    .bind(user)
    .bind(order)
    .bind(plan)
    .bind(server)
    .fetch_one(&pool)
    .await
    .unwrap();
    let insert = "INSERT INTO clients (subscription_id, seat, server_id, uuid, email) VALUES ($1, $2, $3, '6f1c0b8e-4c1e-4a59-9d6e-0c1d2e3f4a5b', $4)";
    sqlx::query(insert).bind(sub).bind(1).bind(server).bind("c1@shop").execute(&pool).await.unwrap();
    let r = sqlx::query(insert).bind(sub).bind(2).bind(server).bind("c2@shop").execute(&pool).await;
    assert_eq!(constraint_of(r), "clients_uuid_key");
}
