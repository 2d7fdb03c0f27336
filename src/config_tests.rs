use std::collections::HashMap;
use std::path::PathBuf;

use super::*;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.entry("DATABASE_URL".into()).or_insert_with(|| "postgres://u@127.0.0.1/db".into());
    map
}

#[test]
fn defaults_load_from_the_files() {
    let s = Settings::load_from(&config_dir(), env(&[])).unwrap();
    assert_eq!(s.env, Environment::Development);
    assert_eq!(s.http.addr.to_string(), "0.0.0.0:8080");
    assert_eq!(s.metrics.addr.to_string(), "127.0.0.1:9100");
    assert_eq!(s.telegram.api_url.as_str(), "https://api.telegram.org/");
    assert!(s.telegram.token.is_none());
}

#[test]
fn environment_overrides_the_file() {
    let s = Settings::load_from(
        &config_dir(),
        env(&[
            ("VPNSHOP__HTTP__ADDR", "127.0.0.1:9999"),
            ("VPNSHOP__JOBS__WORKERS", "7"),
            ("VPNSHOP__TELEGRAM__API_URL", "http://127.0.0.1:4000"),
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ]),
    )
    .unwrap();
    assert_eq!(s.http.addr.to_string(), "127.0.0.1:9999");
    assert_eq!(s.jobs.workers, 7);
    assert_eq!(s.telegram.api_url.as_str(), "http://127.0.0.1:4000/");
    assert_eq!(s.telegram.token.unwrap().expose_secret(), "123:abc");
}

#[test]
fn prefixed_variables_win_over_conventional_ones() {
    let s = Settings::load_from(
        &config_dir(),
        env(&[("DATABASE_URL", "postgres://a@h/one"), ("VPNSHOP__DATABASE__URL", "postgres://a@h/two")]),
    )
    .unwrap();
    assert_eq!(s.database_url(), "postgres://a@h/two");
}

#[test]
fn a_missing_secret_in_production_fails_with_the_key_named() {
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP_ENV", "production")])).unwrap_err().to_string();
    assert!(err.contains("security.jwt_secret"), "{err}");
    assert!(err.contains("VPNSHOP__SECURITY__JWT_SECRET"), "{err}");
}

#[test]
fn production_starts_with_its_secrets_and_logs_json() {
    let s = Settings::load_from(
        &config_dir(),
        env(&[("VPNSHOP_ENV", "production"), ("VPNSHOP__SECURITY__JWT_SECRET", &"x".repeat(40))]),
    )
    .unwrap();
    assert_eq!(s.env, Environment::Production);
    assert!(s.json_logs());
}

#[test]
fn backups_go_to_the_data_directory_and_take_the_environment() {
    let s = Settings::load_from(&config_dir(), env(&[])).unwrap();
    assert_eq!(s.backup.dir, PathBuf::from(".data/backups"));
    assert_eq!((s.backup.keep_daily, s.backup.keep_weekly), (7, 4));
    assert!(s.backup.recipients.is_empty() && s.backup.recipients_file.is_none());
    assert!(!s.scheduler.sweeps.contains_key("backup"), "the backup sweep is off unless asked for");
    let s = Settings::load_from(
        &config_dir(),
        env(&[
            ("VPNSHOP__BACKUP__RECIPIENTS", "age1one, age1two,"),
            ("VPNSHOP__BACKUP__KEEP_DAILY", "3"),
            ("VPNSHOP__BACKUP__PG_DUMP", "/usr/lib/postgresql/15/bin/pg_dump"),
            ("VPNSHOP__SCHEDULER__SWEEPS__BACKUP", "0 45 3 * * *"),
        ]),
    )
    .unwrap();
    assert_eq!(s.backup.recipients, ["age1one", "age1two"]);
    assert_eq!(s.backup.keep_daily, 3);
    assert_eq!(s.backup.pg_dump, PathBuf::from("/usr/lib/postgresql/15/bin/pg_dump"));
    assert_eq!(s.scheduler.sweeps["backup"], "0 45 3 * * *");
    let prod = Settings::load_from(
        &config_dir(),
        env(&[("VPNSHOP_ENV", "production"), ("VPNSHOP__SECURITY__JWT_SECRET", &"x".repeat(40))]),
    )
    .unwrap();
    assert_eq!(prod.backup.dir, PathBuf::from("/var/lib/vpnshop/backups"));
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwt");
    std::fs::write(&path, format!("{}\n", "s".repeat(40))).unwrap();
    let s = Settings::load_from(
        &config_dir(),
        env(&[("VPNSHOP_ENV", "production"), ("VPNSHOP__SECURITY__JWT_SECRET_FILE", path.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(s.security.jwt_secret.unwrap().expose_secret(), "s".repeat(40));
}

#[test]
fn invalid_values_name_the_key() {
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__HTTP__ADDR", "not-an-address")])).unwrap_err();
    assert!(err.to_string().contains("http.addr"), "{err}");
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__JOBS__WORKERS", "0")])).unwrap_err();
    assert!(err.to_string().contains("jobs.workers"), "{err}");
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP_ENV", "staging")])).unwrap_err();
    assert!(err.to_string().contains("VPNSHOP_ENV"), "{err}");
}

#[test]
fn the_metrics_collection_needs_a_timeout_shorter_than_its_interval() {
    let s = Settings::load_from(&config_dir(), env(&[])).unwrap();
    assert_eq!((s.metrics.collect_interval_secs, s.metrics.collect_timeout_ms), (15, 5000));
    for (key, value) in [
        ("VPNSHOP__METRICS__COLLECT_INTERVAL_SECS", "0"),
        ("VPNSHOP__METRICS__COLLECT_TIMEOUT_MS", "0"),
        ("VPNSHOP__METRICS__COLLECT_TIMEOUT_MS", "15000"),
    ] {
        let err = Settings::load_from(&config_dir(), env(&[(key, value)])).unwrap_err();
        assert!(err.to_string().contains("metrics.collect_timeout_ms"), "{key}={value}: {err}");
    }
}

#[test]
fn a_public_webhook_url_needs_a_secret() {
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__TELEGRAM__PUBLIC_URL", "https://shop.example")]))
        .unwrap_err();
    assert!(err.to_string().contains("telegram.webhook_secret"), "{err}");
}

#[test]
fn debug_output_never_shows_secrets() {
    let s = Settings::load_from(
        &config_dir(),
        env(&[
            ("DATABASE_URL", "postgres://user:hunter2-db@h/db"),
            ("TELEGRAM_BOT_TOKEN", "123:hunter2-token"),
            ("VPNSHOP__SECURITY__JWT_SECRET", "hunter2-jwt-secret"),
        ]),
    )
    .unwrap();
    let printed = format!("{s:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("REDACTED"));
}

#[test]
fn admin_ids_come_as_a_list_or_a_comma_separated_variable() {
    let s = Settings::load_from(&config_dir(), env(&[("VPNSHOP__TELEGRAM__ADMIN_IDS", "11, 22")])).unwrap();
    assert_eq!(s.telegram.admin_ids, vec![11, 22]);
    let s = Settings::load_from(&config_dir(), env(&[])).unwrap();
    assert!(s.telegram.admin_ids.is_empty());
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__TELEGRAM__ADMIN_IDS", "11,bob")])).unwrap_err();
    assert!(err.to_string().contains("admin_ids") || err.to_string().contains("bob"), "{err}");
}

#[test]
fn trusted_proxies_come_as_addresses_or_networks_from_a_list_or_a_variable() {
    let s = Settings::load_from(&config_dir(), env(&[])).unwrap();
    assert!(s.http.trusted_proxies.is_empty(), "no proxy is trusted by default");
    let s = Settings::load_from(
        &config_dir(),
        env(&[("VPNSHOP__HTTP__TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,2001:db8::/32")]),
    )
    .unwrap();
    let nets: Vec<String> = s.http.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32"]);
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__HTTP__TRUSTED_PROXIES", "10.0.0.0/8,proxy.lan")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("proxy.lan") && err.contains("trusted_proxies"), "{err}");
}

#[test]
fn http_limits_and_the_public_database_share_are_validated_with_their_keys_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("VPNSHOP__HTTP__HEADER_READ_TIMEOUT_SECS", "0", "http.header_read_timeout_secs"),
        ("VPNSHOP__HTTP__IDLE_TIMEOUT_SECS", "0", "http.idle_timeout_secs"),
        ("VPNSHOP__HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
        ("VPNSHOP__HTTP__MAX_BODY_BYTES", "0", "http.max_body_bytes"),
        ("VPNSHOP__HTTP__RATE_LIMIT_PER_SECOND", "0", "http.rate_limit_per_second"),
        ("VPNSHOP__HTTP__RATE_LIMIT_BURST", "0", "http.rate_limit_burst"),
        ("VPNSHOP__TELEGRAM__MAX_UPDATE_BYTES", "100", "telegram.max_update_bytes"),
        ("VPNSHOP__DATABASE__PUBLIC_CONNECTIONS", "0", "database.public_connections"),
        ("VPNSHOP__DATABASE__PUBLIC_CONNECTIONS", "20", "database.public_connections"),
    ];
    for (var, value, key) in cases {
        let err = Settings::load_from(&config_dir(), env(&[(var, value)])).unwrap_err().to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
    let s = Settings::load_from(&config_dir(), env(&[("VPNSHOP__HTTP__RATE_LIMIT_PER_SECOND", "0.5")])).unwrap();
    assert_eq!(s.http.rate_limit_per_second, 0.5);
    assert!(s.database.public_connections < s.database.max_connections);
}

#[test]
fn stripe_takes_several_signing_secrets_and_its_timeouts_must_fit_a_tap() {
    let key = ("VPNSHOP__STRIPE__SECRET_KEY", "sk_test_abc");
    let err = Settings::load_from(&config_dir(), env(&[key])).unwrap_err().to_string();
    assert!(err.contains("stripe.webhook_secret"), "{err}");
    let s =
        Settings::load_from(&config_dir(), env(&[key, ("VPNSHOP__STRIPE__WEBHOOK_SECRETS", "whsec_old, whsec_new,")]))
            .unwrap();
    assert!(s.stripe.enabled());
    let secrets: Vec<&str> = s.stripe.signing_secrets().iter().map(|s| s.expose_secret()).collect();
    assert_eq!(secrets, ["whsec_old", "whsec_new"]);
    assert!(format!("{:?}", s.stripe).contains("webhook_secrets") && !format!("{:?}", s.stripe).contains("whsec_old"));
    let slow = env(&[key, ("VPNSHOP__STRIPE__WEBHOOK_SECRET", "whsec_a"), ("VPNSHOP__STRIPE__TIMEOUT_SECS", "20")]);
    let err = Settings::load_from(&config_dir(), slow).unwrap_err().to_string();
    assert!(err.contains("telegram.handler_timeout_secs"), "{err}");
    let long =
        env(&[key, ("VPNSHOP__STRIPE__WEBHOOK_SECRET", "whsec_a"), ("VPNSHOP__PAYMENTS__ONLINE_EXPIRY_MINS", "10")]);
    let err = Settings::load_from(&config_dir(), long).unwrap_err().to_string();
    assert!(err.contains("payments.online_expiry_mins"), "{err}");
    assert!(!Settings::load_from(&config_dir(), env(&[])).unwrap().stripe.enabled(), "off without a key");
}

#[test]
fn zarinpal_wants_a_merchant_uuid_and_timeouts_that_fit_a_tap() {
    let merchant = ("VPNSHOP__ZARINPAL__MERCHANT_ID", "1344b5d4-0048-11e8-94db-005056a205be");
    let s = Settings::load_from(&config_dir(), env(&[merchant])).unwrap();
    assert!(s.zarinpal.merchant_id.is_some() && !format!("{:?}", s.zarinpal).contains("1344b5d4"));
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__ZARINPAL__MERCHANT_ID", "merchant-1")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("zarinpal.merchant_id"), "{err}");
    let slow = env(&[merchant, ("VPNSHOP__ZARINPAL__TIMEOUT_SECS", "20")]);
    let err = Settings::load_from(&config_dir(), slow).unwrap_err().to_string();
    assert!(err.contains("zarinpal.timeout_secs") && err.contains("telegram.handler_timeout_secs"), "{err}");
    // the callback verifies within one HTTP request: the worst case must fit its timeout too
    let cut = env(&[merchant, ("VPNSHOP__HTTP__REQUEST_TIMEOUT_SECS", "20")]);
    let err = Settings::load_from(&config_dir(), cut).unwrap_err().to_string();
    assert!(err.contains("zarinpal.timeout_secs") && err.contains("http.request_timeout_secs"), "{err}");
    assert!(!err.contains("telegram.handler_timeout_secs"), "{err}");
    let roomy = env(&[merchant, ("VPNSHOP__HTTP__REQUEST_TIMEOUT_SECS", "23")]);
    Settings::load_from(&config_dir(), roomy).unwrap();
    let err = Settings::load_from(&config_dir(), env(&[("VPNSHOP__ZARINPAL__RETRIES", "9")])).unwrap_err().to_string();
    assert!(err.contains("zarinpal.retries"), "{err}");
}

#[test]
fn production_gateways_need_an_address_to_send_customers_back_to() {
    let jwt = "x".repeat(40);
    let base = [("VPNSHOP_ENV", "production"), ("VPNSHOP__SECURITY__JWT_SECRET", jwt.as_str())];
    let merchant = ("VPNSHOP__ZARINPAL__MERCHANT_ID", "0b7f4c2e-1d3a-4e5f-8a9b-0c1d2e3f4a5b");
    let err = Settings::load_from(&config_dir(), env(&[base[0], base[1], merchant])).unwrap_err().to_string();
    assert!(err.contains("http.public_url") && err.contains("/pay/zarinpal/callback"), "{err}");
    let url = ("VPNSHOP__HTTP__PUBLIC_URL", "https://shop.example.com/");
    Settings::load_from(&config_dir(), env(&[base[0], base[1], merchant, url])).expect("with a public URL");

    let stripe = [("VPNSHOP__STRIPE__SECRET_KEY", "sk_test_1"), ("VPNSHOP__STRIPE__WEBHOOK_SECRET", "whsec_1")];
    let err =
        Settings::load_from(&config_dir(), env(&[base[0], base[1], stripe[0], stripe[1]])).unwrap_err().to_string();
    assert!(err.contains("telegram.bot_username"), "{err}");
    let bot = ("VPNSHOP__TELEGRAM__BOT_USERNAME", "shop_bot");
    Settings::load_from(&config_dir(), env(&[base[0], base[1], stripe[0], stripe[1], bot])).expect("back to the bot");
}

#[test]
fn traces_are_exported_only_with_an_endpoint_from_our_variable_or_the_standard_one() {
    let off = Settings::load_from(&config_dir(), env(&[])).unwrap();
    assert!(off.otel.endpoint.is_none());
    assert_eq!((off.otel.service_name.as_str(), off.otel.sample_ratio), ("vpnshop", 1.0));
    let standard = Settings::load_from(
        &config_dir(),
        env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_SERVICE_NAME", "shop-eu")]),
    )
    .unwrap();
    assert_eq!(standard.otel.endpoint.unwrap().as_str(), "http://collector:4318/");
    assert_eq!(standard.otel.service_name, "shop-eu");
    let ours = Settings::load_from(
        &config_dir(),
        env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("VPNSHOP__OTEL__ENDPOINT", "https://tempo.internal/otlp"),
            ("VPNSHOP__OTEL__SAMPLE_RATIO", "0.25"),
            ("VPNSHOP__OTEL__HEADERS", "Authorization=Basic%20aHVudGVyMg==, X-Scope-OrgID=shop"),
        ]),
    )
    .unwrap();
    assert_eq!(ours.otel.endpoint.as_ref().unwrap().as_str(), "https://tempo.internal/otlp");
    assert_eq!(ours.otel.sample_ratio, 0.25);
    let headers = ours.otel.header_pairs().unwrap();
    assert_eq!(headers[0], ("Authorization".to_owned(), "Basic aHVudGVyMg==".to_owned()));
    assert_eq!(headers[1], ("X-Scope-OrgID".to_owned(), "shop".to_owned()));
    assert!(!format!("{ours:?}").contains("aHVudGVyMg"), "the headers are a secret");
}

#[test]
fn bad_trace_settings_name_their_key_without_showing_headers() {
    for (var, value, key) in [
        ("VPNSHOP__OTEL__ENDPOINT", "ftp://collector", "otel.endpoint"),
        ("VPNSHOP__OTEL__PROTOCOL", "grpc", "otel.protocol"),
        ("VPNSHOP__OTEL__SAMPLE_RATIO", "1.5", "otel.sample_ratio"),
        ("VPNSHOP__OTEL__TIMEOUT_SECS", "0", "otel.timeout_secs"),
        ("VPNSHOP__OTEL__HEADERS", "Authorization hunter2", "otel.headers"),
        ("VPNSHOP__OTEL__HEADERS", "Bad Name=hunter2", "otel.headers"),
    ] {
        let err = Settings::load_from(&config_dir(), env(&[(var, value)])).unwrap_err().to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
