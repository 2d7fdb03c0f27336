use std::str::FromStr;

use rust_decimal::Decimal;

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Usd).unwrap()
}

#[test]
fn amounts_must_be_positive() {
    assert!(Money::from_minor(0, Currency::Usd).is_err());
    assert!(Money::from_minor(-1, Currency::Irr).is_err());
    assert!(Money::from_major(d("0.004"), Currency::Usd).is_err(), "rounds to zero cents");
    assert_eq!(Money::from_major(d("0.005"), Currency::Usd).unwrap().minor(), 1, "half rounds away from zero");
}

#[test]
fn major_units_round_half_away_from_zero_to_the_minor_unit() {
    assert_eq!(Money::from_major(d("4.994"), Currency::Usd).unwrap().minor(), 499);
    assert_eq!(Money::from_major(d("4.995"), Currency::Usd).unwrap().minor(), 500);
    assert_eq!(Money::from_major(d("1250000.5"), Currency::Irr).unwrap().minor(), 1_250_001);
    assert_eq!(usd(499).to_major(), d("4.99"));
}

#[test]
fn huge_amounts_are_an_error_not_a_wraparound() {
    assert!(matches!(Money::from_major(d("1e20"), Currency::Usd), Err(MoneyError::Overflow(_))));
}

#[test]
fn english_formatting() {
    assert_eq!(usd(499).format(Language::En), "$4.99");
    assert_eq!(Money::from_minor(449, Currency::Eur).unwrap().format(Language::En), "€4.49");
    assert_eq!(usd(12_345_678).format(Language::En), "$123,456.78");
    assert_eq!(usd(100).format(Language::En), "$1.00", "cents are always shown");
    assert_eq!(Money::from_minor(1_250_000, Currency::Irr).unwrap().format(Language::En), "125,000 Toman");
}

#[test]
fn persian_formatting_uses_persian_digits_and_toman() {
    let irr = Money::from_minor(1_250_000, Currency::Irr).unwrap();
    assert_eq!(irr.format(Language::Fa), "۱۲۵٬۰۰۰ تومان");
    assert_eq!(usd(499).format(Language::Fa), "۴٫۹۹ دلار");
    // a price that is not a whole Toman keeps its decimal rather than being silently rounded
    assert_eq!(Money::from_minor(15, Currency::Irr).unwrap().format(Language::Fa), "۱٫۵ تومان");
}

#[test]
fn russian_formatting_puts_the_symbol_after_with_a_comma() {
    assert_eq!(usd(499).format(Language::Ru), "4,99\u{a0}$");
    assert_eq!(Money::from_minor(1_234_500, Currency::Eur).unwrap().format(Language::Ru), "12\u{a0}345,00\u{a0}€");
}

#[test]
fn conversion_uses_the_configured_rates_and_rounds_once() {
    let rates = Rates::new(Currency::Usd, [(Currency::Eur, d("0.92")), (Currency::Irr, d("650000"))]).unwrap();
    assert_eq!(rates.convert(usd(499), Currency::Eur).unwrap().minor(), 459, "4.99 * 0.92 = 4.5908");
    assert_eq!(rates.convert(usd(499), Currency::Irr).unwrap().minor(), 3_243_500);
    // cross rate through the base: 4.59 EUR -> USD 4.98913.. -> IRR 3242934.78 -> 3242935
    let eur = Money::from_minor(459, Currency::Eur).unwrap();
    assert_eq!(rates.convert(eur, Currency::Irr).unwrap().minor(), 3_242_935);
    assert_eq!(rates.convert(usd(1), Currency::Usd).unwrap(), usd(1));
}

#[test]
fn conversion_edges() {
    let rates = Rates::new(Currency::Usd, [(Currency::Eur, d("0.5"))]).unwrap();
    // 0.01 USD * 0.5 = 0.005 EUR: half a cent rounds up to one cent, never to zero
    assert_eq!(rates.convert(usd(1), Currency::Eur).unwrap().minor(), 1);
    assert!(matches!(rates.convert(usd(1), Currency::Irr), Err(MoneyError::NoRate(Currency::Irr))));
    assert!(Rates::new(Currency::Usd, [(Currency::Eur, d("0"))]).is_err());
    assert!(Rates::new(Currency::Usd, [(Currency::Eur, d("-1"))]).is_err());
}

#[test]
fn nice_rounding_goes_up_to_the_next_nice_price() {
    let rule = NiceRounding::new(50, 1).unwrap();
    assert_eq!(rule.apply(d("4.12"), Currency::Usd).unwrap().minor(), 449);
    assert_eq!(rule.apply(d("4.49"), Currency::Usd).unwrap().minor(), 449, "already nice stays");
    assert_eq!(rule.apply(d("4.4901"), Currency::Usd).unwrap().minor(), 499, "a hair above goes up");
    assert_eq!(rule.apply(d("4.50"), Currency::Usd).unwrap().minor(), 499);
    assert_eq!(rule.apply(d("0.0001"), Currency::Usd).unwrap().minor(), 49, "never below step - minus");
    assert!(rule.apply(d("0"), Currency::Usd).is_err());
}

#[test]
fn nice_rounding_for_rials_rounds_to_whole_thousands_of_toman() {
    // step of 10,000 Toman = 100,000 rials, nothing subtracted
    let rule = NiceRounding::new(100_000, 0).unwrap();
    assert_eq!(rule.apply(d("1950001"), Currency::Irr).unwrap().minor(), 2_000_000);
    assert_eq!(rule.apply(d("2000000"), Currency::Irr).unwrap().minor(), 2_000_000);
}

#[test]
fn rounding_rules_are_validated() {
    assert!(NiceRounding::new(0, 0).is_err());
    assert!(NiceRounding::new(50, 50).is_err());
    assert!(NiceRounding::new(50, -1).is_err());
}

#[test]
fn typed_amounts_are_parsed_exactly_per_currency() {
    assert_eq!(Money::parse_major("4.99", Currency::Usd).unwrap().minor(), 499);
    assert_eq!(Money::parse_major(" 5 ", Currency::Eur).unwrap().minor(), 500);
    assert_eq!(Money::parse_major("5.5", Currency::Usd).unwrap().minor(), 550);
    assert_eq!(Money::parse_major("1250000", Currency::Irr).unwrap().minor(), 1_250_000);
    assert_eq!(
        Money::parse_major("4.999", Currency::Usd),
        Err(AmountError::TooPrecise { currency: Currency::Usd, digits: 2 })
    );
    assert_eq!(
        Money::parse_major("1000.5", Currency::Irr),
        Err(AmountError::TooPrecise { currency: Currency::Irr, digits: 0 })
    );
    for junk in ["", "abc", "-5", "+5", "1e3", "1,000", "1_000", "4.", ".5", "۵", "NaN", "0x10", "1.2.3"] {
        assert_eq!(Money::parse_major(junk, Currency::Usd), Err(AmountError::NotANumber), "{junk:?}");
    }
    assert_eq!(Money::parse_major("0", Currency::Usd), Err(AmountError::NotPositive));
    assert_eq!(Money::parse_major("0.00", Currency::Usd), Err(AmountError::NotPositive));
    assert_eq!(Money::parse_major("9999999999999999", Currency::Irr), Err(AmountError::TooLarge));
    assert_eq!(Money::parse_major("1234567890123456.5", Currency::Usd), Err(AmountError::TooLarge));
}
