//! `vpnshop migrate --check`: is each statement of the pending migrations safe to apply while the shop serves,
//! with instances of the previous release still running — and if not, why. Read with a real SQL parser
//! (sqlparser, PostgreSQL dialect); what it cannot read is "cannot analyse, review by hand", never safe.
//!
//! The rules are the ones in `migrations/README.md`: expand (new tables, nullable columns or constant defaults,
//! indexes built `CONCURRENTLY`, constraints `NOT VALID` then validated later), deploy, and contract (drop,
//! rename) only in a later release, once no running binary uses what goes. A migration file may carry
//! `-- migrate-check: allow <reason>` after review; its findings are still shown, with the reason.

use std::collections::{HashMap, HashSet};

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

mod alter;
mod fallback;
mod statement;
#[cfg(test)]
mod tests;

/// Why a statement is not safe to apply under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// Rewrites the table and its indexes under an ACCESS EXCLUSIVE lock: nothing reads or writes it meanwhile.
    Rewrite,
    /// Holds a lock that blocks reads or writes while it scans, builds or waits.
    Lock,
    /// The previous release, still serving during the upgrade, stops working with it.
    Breaks,
    /// Fails when applied as written.
    Fails,
    /// Not understood by the checker.
    Unknown,
}

impl Risk {
    pub fn label(self) -> &'static str {
        match self {
            Risk::Rewrite => "table rewrite",
            Risk::Lock => "long lock",
            Risk::Breaks => "breaks the previous release",
            Risk::Fails => "fails as written",
            Risk::Unknown => "cannot analyse, review by hand",
        }
    }
}

/// One statement's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The statement on one line, shortened.
    pub statement: String,
    /// `None` when safe.
    pub risk: Option<Risk>,
    pub why: String,
}

/// One pending migration's verdicts.
#[derive(Debug, Clone)]
pub struct Report {
    pub version: i64,
    pub description: String,
    pub findings: Vec<Finding>,
    /// The reason of its `-- migrate-check: allow <reason>` directive.
    pub allowed: Option<String>,
    /// Advice that does not make it unsafe.
    pub notes: Vec<String>,
}

impl Report {
    /// Safe to apply while the shop serves: every statement is, or a reviewer allowed the file.
    pub fn is_safe(&self) -> bool {
        self.allowed.is_some() || self.findings.iter().all(|f| f.risk.is_none())
    }
}

/// A migration to check.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub version: i64,
    pub description: &'a str,
    pub sql: &'a str,
    /// Starts with sqlx's `-- no-transaction`: run outside a transaction.
    pub no_tx: bool,
}

impl<'a> From<&'a sqlx::migrate::Migration> for Source<'a> {
    fn from(m: &'a sqlx::migrate::Migration) -> Self {
        Source { version: m.version, description: &m.description, sql: m.sql.as_str(), no_tx: m.no_tx }
    }
}

/// A table's size as the planner's statistics know it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSize {
    /// `pg_class.reltuples`; `None` when never vacuumed or analysed.
    pub rows: Option<u64>,
    pub bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub table: String,
    pub unique: bool,
}

/// What the database says about the objects the pending migrations touch (names unqualified, as Postgres
/// folds them). Empty for a fresh database.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tables: HashMap<String, TableSize>,
    pub indexes: HashMap<String, Index>,
    /// Each function name's most volatile overload.
    pub functions: HashMap<String, Volatility>,
    /// (table, column) declared NOT NULL.
    pub not_null: HashSet<(String, String)>,
    /// (table, column) with a validated `CHECK (column IS NOT NULL)`.
    pub not_null_checked: HashSet<(String, String)>,
}

/// At or beyond this many rows (or bytes) a table is large: an ALTER form not known to be quick is unsafe there.
const LARGE_ROWS: u64 = 100_000;
const LARGE_BYTES: i64 = 64 << 20;

/// Checks the pending migrations in order: objects an earlier one creates are new to the later ones.
pub fn analyse(pending: &[Source<'_>], catalog: &Catalog) -> Vec<Report> {
    let mut state = State {
        catalog,
        new_tables: HashSet::new(),
        new_columns: HashSet::new(),
        new_indexes: HashMap::new(),
        not_valid_here: HashSet::new(),
        locks_existing: false,
    };
    pending.iter().map(|m| state.migration(m)).collect()
}

/// What the pending migrations made so far, over the database's catalogue.
struct State<'c> {
    catalog: &'c Catalog,
    new_tables: HashSet<String>,
    new_columns: HashSet<(String, String)>,
    new_indexes: HashMap<String, Index>,
    /// (table, constraint) added NOT VALID by the migration being checked.
    not_valid_here: HashSet<(String, String)>,
    /// The migration being checked locks a table that existed before the pending migrations.
    locks_existing: bool,
}

/// The file a statement is in, for rules about how sqlx runs it.
struct File {
    no_tx: bool,
    statements: usize,
}

/// A statement's risk (`None`: safe) and why.
type Verdict = (Option<Risk>, String);

impl State<'_> {
    fn migration(&mut self, m: &Source<'_>) -> Report {
        self.not_valid_here.clear();
        self.locks_existing = false;
        let (allowed, mut notes) = directive(m.sql);
        let statements = match split(m.sql) {
            Ok(statements) => statements,
            Err(e) => {
                let why = format!("the SQL does not tokenize ({e})");
                let finding = Finding { statement: one_line(m.sql), risk: Some(Risk::Unknown), why };
                return Report {
                    version: m.version,
                    description: m.description.into(),
                    findings: vec![finding],
                    allowed,
                    notes,
                };
            }
        };
        let file = File { no_tx: m.no_tx, statements: statements.len() };
        let mut lock_timeout = false;
        let mut findings = Vec::new();
        for tokens in statements {
            let text = render(&tokens);
            lock_timeout |= is_lock_timeout(&text);
            let (risk, why) = self.parsed(tokens, &file);
            findings.push(Finding { statement: shorten(&text), risk, why });
        }
        if self.locks_existing && !lock_timeout && !m.no_tx {
            notes.push(
                "no lock_timeout: a statement waiting for its lock behind a long transaction blocks every query on \
                 that table meanwhile; start with SET LOCAL lock_timeout = '5s'"
                    .into(),
            );
        }
        Report { version: m.version, description: m.description.into(), findings, allowed, notes }
    }

    fn parsed(&mut self, tokens: Vec<TokenWithSpan>, file: &File) -> Verdict {
        let mut parser = Parser::new(&PostgreSqlDialect {}).with_tokens_with_locations(tokens.clone());
        match parser.parse_statement() {
            Ok(stmt) if parser.peek_token().token == Token::EOF => self.statement(&stmt, file),
            Ok(_) => fallback::classify(self, &tokens, file, "more follows the statement the parser read"),
            Err(e) => fallback::classify(self, &tokens, file, &e.to_string()),
        }
    }

    fn is_new(&self, table: &str) -> bool {
        self.new_tables.contains(table)
    }

    /// Notes that the statement locks `table`; whether the table is one the pending migrations create.
    fn locks(&mut self, table: &str) -> bool {
        let new = self.is_new(table);
        self.locks_existing |= !new;
        new
    }

    /// A table as people read it: its name and size.
    fn describe(&self, table: &str) -> String {
        match self.catalog.tables.get(table) {
            None => format!("{table} (not in the database)"),
            Some(TableSize { rows: None, bytes }) => format!("{table} (never analysed, {})", bytes_text(*bytes)),
            Some(TableSize { rows: Some(rows), bytes }) => {
                format!("{table} (~{} rows, {})", rows_text(*rows), bytes_text(*bytes))
            }
        }
    }

    fn is_large(&self, table: &str) -> bool {
        self.catalog.tables.get(table).is_some_and(|s| s.rows.unwrap_or(0) >= LARGE_ROWS || s.bytes >= LARGE_BYTES)
    }

    fn index(&self, name: &str) -> Option<&Index> {
        self.new_indexes.get(name).or_else(|| self.catalog.indexes.get(name))
    }

    /// A function's volatility: the database's word, else what PostgreSQL's built-ins are.
    fn volatility(&self, function: &str) -> Option<Volatility> {
        self.catalog.functions.get(function).copied().or_else(|| builtin_volatility(function))
    }
}

fn safe(why: impl Into<String>) -> Verdict {
    (None, why.into())
}

fn risk(risk: Risk, why: impl Into<String>) -> Verdict {
    (Some(risk), why.into())
}

/// Statements that refuse to run in a transaction block: sqlx must run them alone, outside one.
fn outside_transaction(file: &File, what: &str, safe_why: String) -> Verdict {
    if !file.no_tx {
        (
            Some(Risk::Fails),
            format!(
                "{what} cannot run inside a transaction: put it in a migration of its own that starts with \
                 -- no-transaction"
            ),
        )
    } else if file.statements > 1 {
        (
            Some(Risk::Fails),
            format!(
                "{what} must be the only statement of its -- no-transaction migration (several statements run \
                 as one implicit transaction)"
            ),
        )
    } else {
        (None, safe_why)
    }
}

/// The file's `-- migrate-check: allow <reason>` (a reason is required) and notes about the directive.
fn directive(sql: &str) -> (Option<String>, Vec<String>) {
    let mut notes = Vec::new();
    for line in sql.lines() {
        let Some(rest) = line.trim().strip_prefix("--").map(str::trim) else { continue };
        let Some(rest) = rest.strip_prefix("migrate-check:").map(str::trim) else { continue };
        match rest.strip_prefix("allow").map(str::trim) {
            Some(reason) if !reason.is_empty() => return (Some(reason.to_owned()), notes),
            _ => notes.push(format!("ignored `-- migrate-check: {rest}`: write `-- migrate-check: allow <reason>`")),
        }
    }
    (None, notes)
}

/// The file's statements as tokens, split at top-level semicolons (a function body in `$$ … $$` is one token).
fn split(sql: &str) -> Result<Vec<Vec<TokenWithSpan>>, String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location().map_err(|e| e.to_string())?;
    let mut statements = Vec::new();
    let mut current = Vec::new();
    for t in tokens {
        if t.token == Token::SemiColon {
            statements.push(std::mem::take(&mut current));
        } else {
            current.push(t);
        }
    }
    statements.push(current);
    statements.retain(|s| s.iter().any(|t| !matches!(t.token, Token::Whitespace(_))));
    Ok(statements)
}

/// A statement's text without comments, on one line.
fn render(tokens: &[TokenWithSpan]) -> String {
    let text: String = tokens
        .iter()
        .map(|t| match &t.token {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => " ".into(),
            Token::Whitespace(_) => " ".into(),
            other => other.to_string(),
        })
        .collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn one_line(sql: &str) -> String {
    shorten(&sql.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn is_lock_timeout(text: &str) -> bool {
    let t = text.to_lowercase();
    t.starts_with("set ") && t.contains("lock_timeout")
}

fn rows_text(rows: u64) -> String {
    match rows {
        r if r >= 1_000_000 => format!("{:.1}M", r as f64 / 1e6),
        r if r >= 10_000 => format!("{}k", r / 1000),
        r => r.to_string(),
    }
}

fn bytes_text(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} kB", b >> 10),
        b => format!("{b} B"),
    }
}

/// PostgreSQL's built-ins a default may call, for when the database has not said (a fresh one says it all).
fn builtin_volatility(function: &str) -> Option<Volatility> {
    match function {
        "random" | "gen_random_uuid" | "uuid_generate_v1" | "uuid_generate_v4" | "clock_timestamp" | "timeofday"
        | "nextval" | "setval" | "txid_current" | "random_normal" => Some(Volatility::Volatile),
        "now"
        | "current_timestamp"
        | "transaction_timestamp"
        | "statement_timestamp"
        | "localtimestamp"
        | "current_date"
        | "current_time"
        | "localtime"
        | "current_user"
        | "current_setting"
        | "to_char" => Some(Volatility::Stable),
        "lower" | "upper" | "length" | "coalesce" | "greatest" | "least" | "jsonb_build_object"
        | "json_build_object" | "array" | "abs" | "round" | "md5" | "concat" => Some(Volatility::Immutable),
        _ => None,
    }
}
