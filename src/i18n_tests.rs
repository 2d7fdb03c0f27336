use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fluent_syntax::ast;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// message id → the variables it uses, from every .ftl file of one language.
fn messages(lang: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("locales").join(lang)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ftl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let resource = fluent_syntax::parser::parse(text.as_str())
            .unwrap_or_else(|(_, errors)| panic!("{} does not parse: {errors:?}", path.display()));
        for entry in resource.body {
            if let ast::Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(p) = &m.value {
                    pattern_vars(p, &mut vars);
                }
                out.insert(m.id.name.to_owned(), vars);
            }
        }
    }
    out
}

fn pattern_vars(p: &ast::Pattern<&str>, vars: &mut BTreeSet<String>) {
    for el in &p.elements {
        if let ast::PatternElement::Placeable { expression } = el {
            expression_vars(expression, vars);
        }
    }
}

fn expression_vars(e: &ast::Expression<&str>, vars: &mut BTreeSet<String>) {
    match e {
        ast::Expression::Select { selector, variants } => {
            inline_vars(selector, vars);
            for v in variants {
                pattern_vars(&v.value, vars);
            }
        }
        ast::Expression::Inline(i) => inline_vars(i, vars),
    }
}

fn inline_vars(i: &ast::InlineExpression<&str>, vars: &mut BTreeSet<String>) {
    match i {
        ast::InlineExpression::VariableReference { id } => {
            vars.insert(id.name.to_owned());
        }
        ast::InlineExpression::Placeable { expression } => expression_vars(expression, vars),
        _ => {}
    }
}

#[test]
fn every_message_exists_in_every_language_with_the_same_variables() {
    let en = messages("en");
    assert!(en.len() > 50, "the English catalogue is loaded ({} messages)", en.len());
    for lang in ["fa", "ru"] {
        let other = messages(lang);
        let missing: Vec<_> = en.keys().filter(|k| !other.contains_key(*k)).collect();
        assert!(missing.is_empty(), "{lang} lacks {missing:?}");
        let extra: Vec<_> = other.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(extra.is_empty(), "{lang} has keys English does not: {extra:?}");
        for (key, vars) in &en {
            assert_eq!(&other[key], vars, "{lang}: `{key}` must use the same variables as English");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("i18n_tests.rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_key_the_code_uses_exists() {
    let en = messages("en");
    let call = regex::Regex::new(r#"\bt(?:_args|a)?\(\s*(?:[a-z_.()]+\s*,\s*)?"([a-z0-9]+(?:-[a-z0-9]+)*)""#).unwrap();
    // in the bot, kebab-case literals are message keys (passed around by helpers like `status_key`)
    let literal = regex::Regex::new(r#""([a-z]+(?:-[a-z0-9]+)+)""#).unwrap();
    // in the dashboard, literals starting with `dash-` are
    let dash_literal = regex::Regex::new(r#""(dash(?:-[a-z0-9]+)+)""#).unwrap();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut used = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        used.extend(call.captures_iter(&text).map(|c| c[1].to_owned()));
        if file.components().any(|c| c.as_os_str() == "bot") {
            used.extend(literal.captures_iter(&text).map(|c| c[1].to_owned()));
        }
        if file.components().any(|c| c.as_os_str() == "dash") {
            used.extend(dash_literal.captures_iter(&text).map(|c| c[1].to_owned()));
        }
    }
    assert!(used.len() > 40, "the scan finds the keys ({} found)", used.len());
    let missing: Vec<_> = used.iter().filter(|k| !en.contains_key(*k)).collect();
    assert!(missing.is_empty(), "keys used in code but missing from locales/en: {missing:?}");
}

#[test]
fn persian_reads_right_to_left_with_persian_digits() {
    let price = crate::domain::Money::from_minor(1_250_000, crate::domain::Currency::Irr).unwrap().format(Language::Fa);
    let text = t_args(
        Language::Fa,
        "notice-data-almost",
        &[("place", "🇩🇪 آلمان".into()), ("percent", number(Language::Fa, 80).into())],
    );
    assert!(text.lines().all(|l| l.starts_with(RLM)), "{text:?}");
    assert!(text.contains("۸۰"), "{text}");
    assert_eq!(price, "۱۲۵٬۰۰۰ تومان");
    assert!(!t(Language::En, "menu-buy").starts_with(RLM));
}

#[test]
fn plural_forms_follow_the_count() {
    let one = t_args(Language::En, "days", &[("n", Arg::Count(1)), ("days", "1".into())]);
    let many = t_args(Language::En, "days", &[("n", Arg::Count(30)), ("days", "30".into())]);
    assert_eq!((one.as_str(), many.as_str()), ("1 day", "30 days"));
    let ru = t_args(Language::Ru, "days", &[("n", Arg::Count(3)), ("days", "3".into())]);
    assert!(ru.contains('3'), "{ru}");
}

#[test]
fn values_are_not_wrapped_in_isolation_marks() {
    let text = t_args(Language::En, "data-gb", &[("gb", "50".into())]);
    assert_eq!(text, "50 GB");
}

#[test]
fn numbers_and_sizes_are_formatted_per_language() {
    assert_eq!(number(Language::En, 1_234_567), "1,234,567");
    assert_eq!(number(Language::Fa, 1_234), "۱٬۲۳۴");
    assert_eq!(number(Language::Ru, 1_234), "1\u{a0}234");
    assert_eq!(gigabytes(Language::En, 50 * (1 << 30)), "50");
    assert_eq!(gigabytes(Language::En, 3 * (1 << 29)), "1.5");
    assert_eq!(gigabytes(Language::Fa, 3 * (1 << 29)), "۱٫۵");
    assert_eq!(gigabytes(Language::Ru, 0), "0");
}
