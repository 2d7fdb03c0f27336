use super::*;

fn shipped() -> Catalog {
    Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/plans.toml")).unwrap()
}

fn price_of(plans: &[PricedPlan], code: &str, currency: Currency) -> i64 {
    let plan = plans.iter().find(|p| p.spec.code() == code).unwrap_or_else(|| panic!("no plan {code}"));
    plan.prices.iter().find(|m| m.currency() == currency).unwrap().minor()
}

#[test]
fn the_shipped_catalogue_is_the_full_cross_product() {
    let catalog = shipped();
    let plans = catalog.plans().unwrap();
    assert_eq!(plans.len(), 4 * 4 * 4 * 4);
    let codes: BTreeSet<String> = plans.iter().map(|p| p.spec.code()).collect();
    assert_eq!(codes.len(), plans.len(), "plan codes are unique");
    assert!(plans.iter().all(|p| p.prices.len() == 3));
    for days in [30, 90, 180, 365] {
        assert!(plans.iter().any(|p| p.spec.duration_days == days));
    }
    assert!(plans.iter().any(|p| p.spec.data_cap == DataCap::Unlimited));
}

#[test]
fn prices_follow_the_rule() {
    let plans = shipped().plans().unwrap();
    // base 2.50 USD: already past 2.49, so up to 2.99
    assert_eq!(price_of(&plans, "de-30d-1dev-50gb", Currency::Usd), 299);
    // 2.30 EUR -> 2.49
    assert_eq!(price_of(&plans, "de-30d-1dev-50gb", Currency::Eur), 249);
    // 2.50 USD × 1,050,000 = 2,625,000 rials -> next 100,000 rials (10,000 Toman)
    assert_eq!(price_of(&plans, "de-30d-1dev-50gb", Currency::Irr), 2_700_000);
    // 2.5 × 3 months × 1.6 × 1.5 × 1.1 (fi) × 0.9 = 17.82 -> 17.99
    assert_eq!(price_of(&plans, "fi-90d-2dev-100gb", Currency::Usd), 1799);
    // 2.5 × 12 × 3 × 3 × 1.2 (us) × 0.75 = 243.00 -> 243.49; in rials 255,150,000 -> 255,200,000
    assert_eq!(price_of(&plans, "us-365d-5dev-unl", Currency::Usd), 24349);
    assert_eq!(price_of(&plans, "us-365d-5dev-unl", Currency::Irr), 255_200_000);
}

#[test]
fn a_longer_plan_costs_less_per_month() {
    let plans = shipped().plans().unwrap();
    let monthly = price_of(&plans, "nl-30d-1dev-100gb", Currency::Usd);
    let yearly = price_of(&plans, "nl-365d-1dev-100gb", Currency::Usd);
    assert!(yearly < monthly * 12, "{yearly} vs 12 × {monthly}");
}

const MINIMAL: &str = r#"
[[locations]]
code = "de"
flag = "x"
price_factor = "1"
labels = { en = "Germany" }
[[durations]]
days = 30
months = 1
discount = "0"
[[seats]]
devices = 1
factor = "1"
[[data]]
gb = 10
factor = "1"
[pricing]
base_currency = "USD"
[pricing.currencies.USD]
base_monthly = "1"
rounding = { step_minor = 1 }
"#;

#[test]
fn a_minimal_catalogue_is_one_exact_plan() {
    let plans = Catalog::parse(MINIMAL).unwrap().plans().unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].prices, vec![Money::from_minor(100, Currency::Usd).unwrap()]);
}

#[test]
fn a_data_tier_can_be_given_in_megabytes() {
    let plans = Catalog::parse(&MINIMAL.replace("gb = 10", "mb = 500")).unwrap().plans().unwrap();
    assert_eq!(plans[0].spec.data_cap, DataCap::from_mb(500).unwrap());
    assert_eq!(plans[0].spec.code(), "de-30d-1dev-500mb");
}

#[test]
fn invalid_catalogues_are_refused_with_a_reason() {
    let cases = [
        (MINIMAL.replace("discount = \"0\"", "discount = \"1\""), "discount"),
        (MINIMAL.replace("code = \"de\"", "code = \"DE!\""), "location code"),
        (MINIMAL.replace("labels = { en = \"Germany\" }", "labels = { fa = \"x\" }"), "English label"),
        (MINIMAL.replace("devices = 1", "devices = 0"), "devices"),
        (MINIMAL.replace("gb = 10", "gb = -5"), "data tier"),
        (MINIMAL.replace("gb = 10", "mb = 0"), "data tier 0 MB"),
        (MINIMAL.replace("gb = 10", "gb = 1\nmb = 500"), "not both"),
        (MINIMAL.replace("base_monthly = \"1\"", "from = \"EUR\""), "EUR"),
        (MINIMAL.replace("flag = \"x\"", "flag = \"x\"\nbogus = 1"), "bogus"),
        (format!("{MINIMAL}\n[pricing.currencies.IRR]\nfrom = \"USD\"\nrounding = {{ step_minor = 1 }}"), "rate"),
    ];
    for (text, needle) in cases {
        let err = format!("{:#}", Catalog::parse(&text).unwrap_err());
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
}
