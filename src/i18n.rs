//! Translations: fluent files under `locales/<lang>/*.ftl`, embedded in the binary. Every customer-facing
//! text goes through `t`/`t_args`; numbers and money are formatted per language before they are passed in
//! (Persian digits for `fa`). Persian lines start with a right-to-left mark so Telegram lays them out RTL
//! even when a line begins with a number, a flag or a Latin name.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid};

use crate::domain::Language;
use crate::domain::money::persian_digits;

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static EN: LanguageIdentifier = langid!("en");
static FA: LanguageIdentifier = langid!("fa");
static RU: LanguageIdentifier = langid!("ru");

/// The right-to-left mark.
pub const RLM: char = '\u{200f}';

fn id(lang: Language) -> &'static LanguageIdentifier {
    match lang {
        Language::En => &EN,
        Language::Fa => &FA,
        Language::Ru => &RU,
    }
}

/// A message variable: text already formatted for the language, or a number that only selects a plural
/// form (numbers shown to people go in as text, so `fa` gets Persian digits).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Count(i64),
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_owned())
    }
}

/// The text of `key` in `lang` (English when missing there; the key itself when missing everywhere, which a
/// test prevents).
pub fn t(lang: Language, key: &str) -> String {
    t_args(lang, key, &[])
}

/// The text of `key` with its variables.
pub fn t_args(lang: Language, key: &str, args: &[(&'static str, Arg)]) -> String {
    directional(lang, plain(lang, key, args))
}

/// The text of `key` without right-to-left marks, for pages that set their direction themselves (the dashboard).
pub fn plain(lang: Language, key: &str, args: &[(&'static str, Arg)]) -> String {
    let map: HashMap<Cow<'static, str>, FluentValue> = args
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Arg::Text(s) => FluentValue::from(s.clone()),
                Arg::Count(n) => FluentValue::from(*n),
            };
            (Cow::Borrowed(*k), value)
        })
        .collect();
    LOCALES
        .try_lookup_with_args(id(lang), key, &map)
        .or_else(|| LOCALES.try_lookup_with_args(&EN, key, &map))
        .unwrap_or_else(|| key.to_owned())
}

/// Whether `key` has a text (in English at least).
pub fn has(key: &str) -> bool {
    LOCALES.try_lookup(&EN, key).is_some()
}

/// Starts every line of a Persian text with a right-to-left mark.
fn directional(lang: Language, text: String) -> String {
    if !lang.is_rtl() {
        return text;
    }
    text.lines().map(|line| format!("{RLM}{line}")).collect::<Vec<_>>().join("\n")
}

/// A whole number for display: thousands grouped, Persian digits in `fa`.
pub fn number(lang: Language, n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let sep = match lang {
        Language::En => ",",
        Language::Ru => "\u{a0}",
        Language::Fa => "\u{66c}",
    };
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    if lang == Language::Fa { persian_digits(&out) } else { out }
}

/// A date or time (ASCII digits) in the language's digits.
pub fn localize_digits(lang: Language, text: &str) -> String {
    if lang == Language::Fa { persian_digits(text) } else { text.to_owned() }
}

/// A moment as customers read it: `2026-12-02 14:30 UTC`, in the language's digits.
pub fn moment(lang: Language, at: chrono::DateTime<chrono::Utc>) -> String {
    localize_digits(lang, &at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A byte count as GB with one decimal (binary GB, as the plans count them), in the language's digits.
pub fn gigabytes(lang: Language, bytes: i64) -> String {
    let tenths = (i128::from(bytes.max(0)) * 10 + (1 << 29)) / (1i128 << 30);
    let (whole, frac) = (tenths / 10, tenths % 10);
    let point = match lang {
        Language::En => ".",
        Language::Ru => ",",
        Language::Fa => "\u{66b}",
    };
    let text = if frac == 0 { whole.to_string() } else { format!("{whole}{point}{frac}") };
    if lang == Language::Fa { persian_digits(&text) } else { text }
}

#[cfg(test)]
#[path = "i18n_tests.rs"]
mod tests;
