//! Orders and payments in the dashboard: the listings and their filters on the API's services, money shown
//! exactly in each language, 50 rows a page, and the CSV downloads (same filters, exact decimal amounts, formula
//! cells neutralised, streamed past one batch).

use reqwest::StatusCode;
use sqlx::PgPool;
use vpnshop::domain::{Currency, Language, Money};

use super::dash;
use crate::api::money::{customers, plan_id};

/// Ann (`c6000`) and Ben (username `=cmd`): three orders, each with one payment, told apart by their amounts.
struct Data {
    ann: i64,
    ben: i64,
}

async fn dataset(pool: &PgPool) -> Data {
    let users = customers(pool, 6_000, 2).await;
    let (ann, ben) = (users[0], users[1]);
    sqlx::query("UPDATE users SET username = '=cmd' WHERE id = $1").bind(ben).execute(pool).await.unwrap();
    let plan = plan_id(pool).await;
    for (user, minor, currency, order_status, method, pay_status, days_ago) in [
        (ann, 1250, "USD", "fulfilled", "stripe", "succeeded", 2),
        (ben, 1_250_000, "IRR", "awaiting_payment", "card", "under_review", 1),
        (ben, 99, "EUR", "cancelled", "zarinpal", "failed", 10),
    ] {
        sqlx::query(
            "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, created_at)
                        VALUES ($1, $2, $3, $4, $5, now() - make_interval(days => $8)) RETURNING id)
             INSERT INTO payments (order_id, method, status, amount_minor, currency, created_at)
             SELECT id, $6, $7, $3, $4, now() - make_interval(days => $8) FROM o",
        )
        .bind(user)
        .bind(plan)
        .bind(minor)
        .bind(currency)
        .bind(order_status)
        .bind(method)
        .bind(pay_status)
        .bind(days_ago)
        .execute(pool)
        .await
        .unwrap();
    }
    Data { ann, ben }
}

const USD: &str = "$12.50";
const IRR: &str = "125,000 Toman";
const EUR: &str = "€0.99";

fn shown(body: &str) -> Vec<&'static str> {
    [USD, IRR, EUR].into_iter().filter(|m| body.contains(m)).collect()
}

fn day(days_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days_ago)).format("%Y-%m-%d").to_string()
}

#[sqlx::test]
async fn the_pages_render_for_every_role_in_every_language_with_money_shown_exactly(pool: PgPool) {
    let d = dash(pool.clone()).await;
    dataset(&pool).await;
    let usd = Money::from_minor(1250, Currency::Usd).unwrap();
    let irr = Money::from_minor(1_250_000, Currency::Irr).unwrap();
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for (lang, language) in [("en", Language::En), ("fa", Language::Fa), ("ru", Language::Ru)] {
            b.set_cookie("vpnshop_lang", lang);
            for path in ["/dash/orders", "/dash/payments"] {
                let page = d.get(&mut b, path).await;
                page.assert_ok();
                assert_eq!(page.body.contains("dir=\"rtl\""), lang == "fa", "{who} {lang} {path}");
                assert!(!page.body.contains(" style=") && !page.body.contains("<script>"), "{path}");
                assert!(!page.body.contains("method=\"post\" action=\"/dash/orders"), "read-only pages");
                for money in [usd, irr] {
                    assert!(
                        page.body.contains(&money.format(language)),
                        "{who} {lang} {path}: {}",
                        money.format(language)
                    );
                }
                assert!(page.body.contains(&format!("{path}.csv")), "the CSV link");
            }
        }
    }
    let mut b = d.sign_in("viewer").await;
    assert_eq!(shown(&d.get(&mut b, "/dash/payments").await.body), vec![USD, IRR, EUR]);
    assert!(d.get(&mut b, "/dash/orders").await.body.contains("@=cmd"), "the username, escaped as text");
}

#[sqlx::test]
async fn filters_narrow_orders_and_payments_and_bad_ones_name_their_field(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let Data { ann, ben } = dataset(&pool).await;
    let mut b = d.sign_in("viewer").await;
    let cases = [
        ("/dash/orders?status=fulfilled".to_owned(), vec![USD]),
        (format!("/dash/orders?customer={ben}"), vec![IRR, EUR]),
        ("/dash/orders?currency=EUR".to_owned(), vec![EUR]),
        ("/dash/orders?method=card".to_owned(), vec![IRR]),
        ("/dash/orders?kind=new&status=".to_owned(), vec![USD, IRR, EUR]),
        (format!("/dash/orders?from={}", day(3)), vec![USD, IRR]),
        (format!("/dash/orders?to={}", day(5)), vec![EUR]),
        ("/dash/payments?status=under_review".to_owned(), vec![IRR]),
        ("/dash/payments?method=stripe".to_owned(), vec![USD]),
        ("/dash/payments?currency=IRR".to_owned(), vec![IRR]),
        (format!("/dash/payments?customer={ann}&from={}&to={}", day(3), day(0)), vec![USD]),
        (format!("/dash/payments?customer={ann}&status=failed"), vec![]),
    ];
    for (path, want) in cases {
        let page = d.get(&mut b, &path).await;
        page.assert_ok();
        assert_eq!(shown(&page.body), want, "{path}");
    }
    for (query, field) in [
        ("status=bogus", "status"),
        ("method=cash", "method"),
        ("currency=GBP", "currency"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("customer=abc", "customer"),
        ("from=2026-03-02&to=2026-03-01", "to"),
        ("cursor=not-ours", "cursor"),
    ] {
        for path in ["/dash/orders", "/dash/payments", "/dash/orders.csv", "/dash/payments.csv"] {
            if field == "cursor" && path.ends_with(".csv") {
                continue; // a download has every page
            }
            let page = d.get(&mut b, &format!("{path}?{query}")).await;
            assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}?{query}");
            assert!(page.body.contains(&format!("{field}:")), "{path}?{query}: {}", page.body);
        }
    }
    let page = d.get(&mut b, "/dash/orders?kind=gift").await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
}

fn csv_lines(body: &str) -> Vec<&str> {
    body.split("\r\n").filter(|l| !l.is_empty()).collect()
}

#[sqlx::test]
async fn csv_downloads_have_a_header_the_filtered_rows_exact_amounts_and_neutralised_formulas(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let Data { ben, .. } = dataset(&pool).await;
    let mut b = d.sign_in("viewer").await;
    let all = d.get(&mut b, "/dash/payments.csv").await;
    all.assert_ok();
    assert_eq!(all.headers["content-type"], "text/csv; charset=utf-8");
    let disposition = all.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"payments-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let lines = csv_lines(&all.body);
    assert_eq!(
        lines[0],
        "id,order_id,created_at,status,method,customer_id,telegram_id,username,currency,amount,decided_at,decided_by"
    );
    assert_eq!(lines.len(), 4, "{}", all.body);
    for amount in [",USD,12.50,", ",IRR,1250000,", ",EUR,0.99,"] {
        assert_eq!(lines.iter().filter(|l| l.contains(amount)).count(), 1, "{amount}: {}", all.body);
    }
    assert!(all.body.contains(",'=cmd,") && !all.body.contains(",=cmd,"), "{}", all.body);

    let bens = d.get(&mut b, &format!("/dash/payments.csv?customer={ben}")).await;
    let lines = csv_lines(&bens.body);
    assert_eq!(lines.len(), 3, "{}", bens.body);
    assert!(lines[1..].iter().all(|l| l.contains(&format!(",{ben},6001,'=cmd,"))), "{}", bens.body);
    let succeeded = d.get(&mut b, "/dash/payments.csv?status=succeeded").await;
    assert_eq!(csv_lines(&succeeded.body).len(), 2);
    assert!(succeeded.body.contains(",USD,12.50,"));

    let orders = d.get(&mut b, "/dash/orders.csv?currency=IRR").await;
    orders.assert_ok();
    assert_eq!(orders.headers["content-type"], "text/csv; charset=utf-8");
    let lines = csv_lines(&orders.body);
    assert!(
        lines[0].starts_with("id,public_id,created_at,status,kind,customer_id,telegram_id,username,"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 2, "{}", orders.body);
    assert!(
        lines[1].contains(",awaiting_payment,new,")
            && lines[1].contains(",'=cmd,")
            && lines[1].contains(",IRR,1250000,")
    );
}

#[sqlx::test]
async fn listings_page_by_fifty_and_a_download_streams_every_row_past_one_batch(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let users = customers(&pool, 7_000, 3).await;
    let plan = plan_id(&pool).await;
    sqlx::query(
        "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, created_at)
                    SELECT ($1::int8[])[1 + g % 3], $2, 100 + g, 'USD', 'fulfilled', now() - g * interval '1 second'
                      FROM generate_series(1, 2345) g RETURNING id, amount_minor, created_at)
         INSERT INTO payments (order_id, method, status, amount_minor, currency, created_at)
         SELECT id, 'card', 'accepted', amount_minor, 'USD', created_at FROM o",
    )
    .bind(&users)
    .bind(plan)
    .execute(&pool)
    .await
    .unwrap();
    let mut b = d.sign_in("viewer").await;
    let first = d.get(&mut b, "/dash/payments?method=card").await;
    first.assert_ok();
    assert_eq!(first.body.matches("<tr>").count(), 51, "a header and 50 rows");
    assert!(first.body.len() < 100_000, "{} bytes", first.body.len());
    let next = regex::Regex::new(r#"rel="next" href="([^"]+)""#).unwrap();
    let href = next.captures(&first.body).expect("a next page")[1].replace("&amp;", "&");
    assert!(href.contains("method=card") && href.contains("cursor="), "{href}");
    let second = d.get(&mut b, &href).await;
    second.assert_ok();
    assert_eq!(second.body.matches("<tr>").count(), 51);
    assert!(first.body.contains("$1.50") && !first.body.contains("$1.51"), "newest first: amount 150 is row 50");
    assert!(second.body.contains("$1.51") && second.body.contains("$2.00") && !second.body.contains("$1.50"));

    let csv = d.get(&mut b, "/dash/payments.csv").await;
    csv.assert_ok();
    let lines = csv_lines(&csv.body);
    assert_eq!(lines.len(), 2346, "a header and every payment");
    let ids: std::collections::HashSet<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(ids.len(), 2345, "each payment once");
    let orders = d.get(&mut b, "/dash/orders.csv?status=fulfilled").await;
    assert_eq!(csv_lines(&orders.body).len(), 2346);
}
