//! Statements the parser does not read (DO blocks, CLUSTER, REINDEX, DROP INDEX CONCURRENTLY): the few forms
//! known by their first words; anything else cannot be analysed and is unsafe until reviewed by hand.

use sqlparser::tokenizer::{Token, TokenWithSpan};

use super::{File, Index, Risk, State, Verdict, outside_transaction};

/// The statement's words, upper case, in order (no strings, numbers or punctuation).
fn words(tokens: &[TokenWithSpan]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Word(w) => Some(if w.quote_style.is_some() { w.value.clone() } else { w.value.to_uppercase() }),
            _ => None,
        })
        .collect()
}

pub(super) fn classify(state: &mut State<'_>, tokens: &[TokenWithSpan], file: &File, parse_error: &str) -> Verdict {
    let words = words(tokens);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["DO", ..] => (
            Some(Risk::Unknown),
            "a DO block runs procedural code the checker cannot see into: review it by hand".into(),
        ),
        ["CLUSTER", ..] => (
            Some(Risk::Rewrite),
            "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock: do it outside migrations (pg_repack)".into(),
        ),
        ["REINDEX", rest @ ..] if rest.contains(&"CONCURRENTLY") => outside_transaction(
            file,
            "REINDEX CONCURRENTLY",
            "rebuilds the index without blocking reads or writes".to_owned(),
        ),
        ["REINDEX", ..] => (
            Some(Risk::Lock),
            "REINDEX blocks writes to the table (and reads that use the index) while it builds: use REINDEX \
             CONCURRENTLY, alone in a migration that starts with -- no-transaction"
                .into(),
        ),
        ["DROP", "INDEX", "CONCURRENTLY", rest @ ..] => drop_index_concurrently(state, rest, file),
        _ => (Some(Risk::Unknown), format!("the SQL parser does not read it ({parse_error}): review it by hand")),
    }
}

fn drop_index_concurrently(state: &mut State<'_>, rest: &[&str], file: &File) -> Verdict {
    let names: Vec<String> = rest
        .iter()
        .filter(|w| !matches!(**w, "IF" | "EXISTS" | "CASCADE" | "RESTRICT"))
        .map(|w| w.to_lowercase())
        .collect();
    for index in &names {
        if let Some(Index { table, unique: true }) = state.index(index).cloned()
            && !state.is_new(&table)
        {
            return (
                Some(Risk::Breaks),
                format!(
                    "drops the unique index {index}: the previous release may rely on it (ON CONFLICT, \
                     unique-violation handling)"
                ),
            );
        }
    }
    outside_transaction(file, "DROP INDEX CONCURRENTLY", "drops the index without blocking reads or writes".to_owned())
}
