//! Exact money: integer minor units with their currency, conversion by configured rates, "nice" price
//! rounding and formatting per language. No floats anywhere.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use super::Language;

crate::text_enum! {
    /// A currency the shop prices in. IRR is stored in rials and shown to customers in Toman (1 Toman = 10 rials).
    pub enum Currency {
        Usd => "USD",
        Eur => "EUR",
        Irr => "IRR",
    }
}

impl Currency {
    /// Digits after the decimal point of one minor unit (cents for USD, none for rials).
    pub fn minor_digits(self) -> u32 {
        match self {
            Currency::Usd | Currency::Eur => 2,
            Currency::Irr => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("an amount must be positive, got {0}")]
    NotPositive(Decimal),
    #[error("amount {0} is too large")]
    Overflow(Decimal),
    #[error("no exchange rate configured for {0}")]
    NoRate(Currency),
    #[error("invalid rounding rule: {0}")]
    InvalidRounding(String),
}

/// Why an operator's amount was refused (see [`Money::parse_major`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("not an amount: write digits with an optional decimal point, like 4.99")]
    NotANumber,
    #[error("{currency} takes at most {digits} digits after the decimal point")]
    TooPrecise { currency: Currency, digits: u32 },
    #[error("the amount must be more than zero")]
    NotPositive,
    #[error("the amount is too large")]
    TooLarge,
}

/// An exact, positive amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount in minor units (cents, rials). Must be positive.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive(Decimal::from(minor)));
        }
        Ok(Money { minor, currency })
    }

    /// An amount in major units (`4.99` dollars), rounded half away from zero to the currency's minor unit.
    pub fn from_major(major: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let scaled = major
            .checked_mul(Decimal::from(10_i64.pow(currency.minor_digits())))
            .ok_or(MoneyError::Overflow(major))?
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        let minor = i64::try_from(scaled).map_err(|_| MoneyError::Overflow(major))?;
        Money::from_minor(minor, currency).map_err(|_| MoneyError::NotPositive(major))
    }

    /// Parses an amount an operator typed, in major units of `currency` (`4.99` dollars, `1250000` rials): plain
    /// digits with at most the currency's fraction digits (none for IRR), positive, nothing rounded. Thousands
    /// separators, signs, exponents and other digits are refused.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Money, AmountError> {
        let text = text.trim();
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int_part) || frac_part.is_some_and(|f| !digits(f)) {
            return Err(AmountError::NotANumber);
        }
        let places = frac_part.map_or(0, str::len);
        if places > currency.minor_digits() as usize {
            return Err(AmountError::TooPrecise { currency, digits: currency.minor_digits() });
        }
        if int_part.len() > 15 {
            return Err(AmountError::TooLarge);
        }
        let major: Decimal = text.parse().map_err(|_| AmountError::NotANumber)?;
        Money::from_major(major, currency).map_err(|e| match e {
            MoneyError::NotPositive(_) => AmountError::NotPositive,
            _ => AmountError::TooLarge,
        })
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The amount in major units, exact.
    pub fn to_major(self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_digits())
    }

    /// Formats for a customer: `$4.99` (en), `4,99 $` (ru), `۱۲۵٬۰۰۰ تومان` (fa; IRR is shown in Toman).
    pub fn format(self, lang: Language) -> String {
        let (value, unit) = match self.currency {
            // Toman: rials / 10, with one decimal only when a price is not a whole Toman.
            Currency::Irr => (Decimal::new(self.minor, 1).normalize(), CurrencyUnit::Toman),
            Currency::Usd => (self.to_major(), CurrencyUnit::Dollar),
            Currency::Eur => (self.to_major(), CurrencyUnit::Euro),
        };
        let (group, point) = match lang {
            Language::En => (",", "."),
            Language::Ru => ("\u{a0}", ","),
            Language::Fa => ("\u{66c}", "\u{66b}"),
        };
        let mut number = group_digits(&value, group, point);
        if lang == Language::Fa {
            number = persian_digits(&number);
        }
        match (lang, unit) {
            (Language::En, CurrencyUnit::Dollar) => format!("${number}"),
            (Language::En, CurrencyUnit::Euro) => format!("€{number}"),
            (Language::En, CurrencyUnit::Toman) => format!("{number} Toman"),
            (Language::Ru, CurrencyUnit::Dollar) => format!("{number}\u{a0}$"),
            (Language::Ru, CurrencyUnit::Euro) => format!("{number}\u{a0}€"),
            (Language::Ru, CurrencyUnit::Toman) => format!("{number}\u{a0}томанов"),
            (Language::Fa, CurrencyUnit::Dollar) => format!("{number} دلار"),
            (Language::Fa, CurrencyUnit::Euro) => format!("{number} یورو"),
            (Language::Fa, CurrencyUnit::Toman) => format!("{number} تومان"),
        }
    }
}

enum CurrencyUnit {
    Dollar,
    Euro,
    Toman,
}

/// Writes `value` with a thousands separator and a decimal point of the caller's choosing.
fn group_digits(value: &Decimal, group: &str, point: &str) -> String {
    let text = value.to_string();
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let digits: Vec<char> = int_part.chars().collect();
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(group);
        }
        out.push(*c);
    }
    if let Some(frac) = frac_part {
        out.push_str(point);
        out.push_str(frac);
    }
    out
}

/// Replaces ASCII digits with Persian (Extended Arabic-Indic) digits.
pub fn persian_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x06F0 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

/// Exchange rates against one base currency: `1 base = rate[c] c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    base: Currency,
    per_base: BTreeMap<Currency, Decimal>,
}

impl Rates {
    /// Rates for `base`; the base's own rate is 1. Every rate must be positive.
    pub fn new(base: Currency, rates: impl IntoIterator<Item = (Currency, Decimal)>) -> Result<Rates, MoneyError> {
        let mut per_base = BTreeMap::new();
        per_base.insert(base, Decimal::ONE);
        for (currency, rate) in rates {
            if rate <= Decimal::ZERO {
                return Err(MoneyError::NotPositive(rate));
            }
            if currency != base {
                per_base.insert(currency, rate);
            }
        }
        Ok(Rates { base, per_base })
    }

    pub fn base(&self) -> Currency {
        self.base
    }

    fn rate(&self, currency: Currency) -> Result<Decimal, MoneyError> {
        self.per_base.get(&currency).copied().ok_or(MoneyError::NoRate(currency))
    }

    /// Converts an exact amount to another currency, rounding half away from zero to its minor unit.
    pub fn convert(&self, money: Money, to: Currency) -> Result<Money, MoneyError> {
        if money.currency == to {
            return Ok(money);
        }
        Money::from_major(self.convert_major(money.to_major(), money.currency, to)?, to)
    }

    /// Converts an amount in major units without rounding (for prices that are rounded afterwards).
    pub fn convert_major(&self, major: Decimal, from: Currency, to: Currency) -> Result<Decimal, MoneyError> {
        if from == to {
            return Ok(major);
        }
        let in_base = major.checked_div(self.rate(from)?).ok_or(MoneyError::Overflow(major))?;
        in_base.checked_mul(self.rate(to)?).ok_or(MoneyError::Overflow(major))
    }
}

/// "Nice" price rounding: up to the next multiple of `step`, minus `minus` (both in minor units), so with
/// step 50 and minus 1 a raw $4.12 becomes $4.49 and $4.50 becomes $4.49.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct NiceRounding {
    pub step_minor: i64,
    #[serde(default)]
    pub minus_minor: i64,
}

impl NiceRounding {
    pub fn new(step_minor: i64, minus_minor: i64) -> Result<NiceRounding, MoneyError> {
        if step_minor <= 0 || minus_minor < 0 || minus_minor >= step_minor {
            return Err(MoneyError::InvalidRounding(format!(
                "step must be positive and minus smaller than step (step {step_minor}, minus {minus_minor})"
            )));
        }
        Ok(NiceRounding { step_minor, minus_minor })
    }

    /// Rounds a raw price (any precision, in major units) to a nice one. The result is never below
    /// `step - minus`, so a tiny raw price still yields a positive one.
    pub fn apply(self, raw_major: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        NiceRounding::new(self.step_minor, self.minus_minor)?;
        if raw_major <= Decimal::ZERO {
            return Err(MoneyError::NotPositive(raw_major));
        }
        let raw_minor = raw_major
            .checked_mul(Decimal::from(10_i64.pow(currency.minor_digits())))
            .ok_or(MoneyError::Overflow(raw_major))?;
        // Add `minus` first so a raw price already at a nice value (4.49) stays there.
        let shifted = raw_minor + Decimal::from(self.minus_minor);
        let steps = (shifted / Decimal::from(self.step_minor)).ceil();
        let steps = i64::try_from(steps).map_err(|_| MoneyError::Overflow(raw_major))?.max(1);
        let minor = steps
            .checked_mul(self.step_minor)
            .and_then(|v| v.checked_sub(self.minus_minor))
            .ok_or(MoneyError::Overflow(raw_major))?;
        Money::from_minor(minor, currency)
    }
}

#[cfg(test)]
#[path = "money_tests.rs"]
mod tests;
