//! The classifier over SQL snippets, against a made-up catalogue with a large `jobs`, a small `users` and a
//! `payments` in between.

use super::*;

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    let size = |rows: Option<u64>, bytes: i64| TableSize { rows, bytes };
    c.tables.insert("jobs".into(), size(Some(2_000_000), 800 << 20));
    c.tables.insert("users".into(), size(Some(1_200), 200 << 10));
    c.tables.insert("payments".into(), size(Some(300_000), 90 << 20));
    c.tables.insert("fresh".into(), size(None, 8 << 10));
    let index = |table: &str, unique| Index { table: table.into(), unique };
    c.indexes.insert("users_telegram_id_key".into(), index("users", true));
    c.indexes.insert("jobs_run_at".into(), index("jobs", false));
    c.functions.insert("now".into(), Volatility::Stable);
    c.functions.insert("random".into(), Volatility::Volatile);
    c.functions.insert("next_ticket".into(), Volatility::Volatile);
    c.functions.insert("lower".into(), Volatility::Immutable);
    c.not_null.insert(("users".into(), "telegram_id".into()));
    c.not_null_checked.insert(("payments".into(), "order_id".into()));
    c
}

fn report(sql: &str, no_tx: bool) -> Report {
    let source = Source { version: 1, description: "test", sql, no_tx };
    analyse(&[source], &catalog()).remove(0)
}

/// The risk of each statement (`None`: safe).
fn risks(sql: &str) -> Vec<Option<Risk>> {
    report(sql, false).findings.iter().map(|f| f.risk).collect()
}

fn risk(sql: &str) -> Option<Risk> {
    let r = risks(sql);
    assert_eq!(r.len(), 1, "one statement in {sql}");
    r[0]
}

fn why(sql: &str) -> String {
    report(sql, false).findings.into_iter().map(|f| f.why).collect::<Vec<_>>().join(" | ")
}

#[test]
fn adding_a_nullable_column_or_one_with_a_constant_default_is_safe() {
    assert_eq!(risk("ALTER TABLE jobs ADD COLUMN trace_parent TEXT"), None);
    assert_eq!(risk("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS note TEXT DEFAULT NULL"), None);
    assert_eq!(risk("ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'catalog'"), None);
    assert_eq!(risk("ALTER TABLE jobs ADD COLUMN tries INT NOT NULL DEFAULT 0, ADD COLUMN tag TEXT"), None);
    assert_eq!(risk("alter table ONLY public.jobs add column x text default lower('A')"), None);
}

#[test]
fn now_is_stable_so_a_default_of_now_does_not_rewrite() {
    // PostgreSQL 11+ evaluates a non-volatile default once and stores it in the catalogue
    assert_eq!(risk("ALTER TABLE jobs ADD COLUMN seen_at TIMESTAMPTZ NOT NULL DEFAULT now()"), None);
    assert_eq!(risk("ALTER TABLE jobs ADD COLUMN seen_at TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP"), None);
}

#[test]
fn a_volatile_default_rewrites_the_table_and_names_its_size() {
    for sql in [
        "ALTER TABLE jobs ADD COLUMN r FLOAT8 DEFAULT random()",
        "ALTER TABLE jobs ADD COLUMN id2 UUID NOT NULL DEFAULT gen_random_uuid()",
        "ALTER TABLE jobs ADD COLUMN t TIMESTAMPTZ DEFAULT clock_timestamp()",
        "ALTER TABLE jobs ADD COLUMN n BIGINT DEFAULT next_ticket()",
        "ALTER TABLE jobs ADD COLUMN n BIGINT DEFAULT nobody_knows_me(1)",
        "ALTER TABLE jobs ADD COLUMN s BIGSERIAL",
        "ALTER TABLE jobs ADD COLUMN g INT GENERATED ALWAYS AS (attempts * 2) STORED",
    ] {
        assert_eq!(risk(sql), Some(Risk::Rewrite), "{sql}");
    }
    let why = why("ALTER TABLE jobs ADD COLUMN r FLOAT8 DEFAULT random()");
    assert!(why.contains("random()") && why.contains("jobs (~2.0M rows, 800.0 MB)"), "{why}");
}

#[test]
fn not_null_without_a_default_breaks_the_previous_release() {
    assert_eq!(risk("ALTER TABLE users ADD COLUMN region TEXT NOT NULL"), Some(Risk::Breaks));
    assert!(why("ALTER TABLE users ADD COLUMN region TEXT NOT NULL").contains("INSERTs"));
}

#[test]
fn constraints_added_with_a_column_check_every_row_under_lock() {
    assert_eq!(risk("ALTER TABLE users ADD COLUMN c TEXT CHECK (c IS NULL OR c <> '')"), Some(Risk::Lock));
    assert_eq!(risk("ALTER TABLE users ADD COLUMN email TEXT UNIQUE"), Some(Risk::Lock));
    // a new column is NULL everywhere: nothing to check against the other table
    assert_eq!(risk("ALTER TABLE payments ADD COLUMN refund_of BIGINT REFERENCES payments (id)"), None);
    assert_eq!(risk("ALTER TABLE payments ADD COLUMN u BIGINT DEFAULT 1 REFERENCES users (id)"), Some(Risk::Lock));
}

#[test]
fn changing_a_column_type_rewrites() {
    assert_eq!(risk("ALTER TABLE jobs ALTER COLUMN payload TYPE json USING payload::json"), Some(Risk::Rewrite));
    assert_eq!(risk("ALTER TABLE users ALTER COLUMN id SET DATA TYPE BIGINT"), Some(Risk::Rewrite));
}

#[test]
fn set_not_null_is_safe_only_when_a_validated_check_proves_it() {
    assert_eq!(risk("ALTER TABLE payments ALTER COLUMN method SET NOT NULL"), Some(Risk::Lock));
    assert_eq!(risk("ALTER TABLE payments ALTER COLUMN order_id SET NOT NULL"), None);
    assert_eq!(risk("ALTER TABLE users ALTER COLUMN telegram_id SET NOT NULL"), None, "already");
    assert_eq!(risk("ALTER TABLE users ALTER COLUMN name DROP NOT NULL"), None);
    assert_eq!(risk("ALTER TABLE users ALTER COLUMN name SET DEFAULT random()"), None, "new rows only");
    assert_eq!(risk("ALTER TABLE users ALTER COLUMN name DROP DEFAULT"), Some(Risk::Breaks));
}

#[test]
fn an_index_on_an_existing_table_must_be_built_concurrently_alone_outside_a_transaction() {
    let plain = "CREATE INDEX jobs_kind ON jobs (kind)";
    assert_eq!(risk(plain), Some(Risk::Lock));
    assert!(why(plain).contains("jobs (~2.0M rows") && why(plain).contains("CONCURRENTLY"), "{}", why(plain));
    assert_eq!(risk("CREATE UNIQUE INDEX u ON users (lower(name))"), Some(Risk::Lock));

    let concurrent = "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_kind ON jobs (kind)";
    assert_eq!(risk(concurrent), Some(Risk::Fails), "inside sqlx's transaction");
    assert_eq!(report(concurrent, true).findings[0].risk, None);
    let two = format!("{concurrent}; CREATE INDEX CONCURRENTLY b ON jobs (run_at)");
    let r = report(&two, true);
    assert!(r.findings.iter().all(|f| f.risk == Some(Risk::Fails)), "one implicit transaction: {r:?}");
}

#[test]
fn dropping_indexes() {
    assert_eq!(risk("DROP INDEX jobs_run_at"), Some(Risk::Lock));
    assert_eq!(risk("DROP INDEX users_telegram_id_key"), Some(Risk::Breaks));
    assert_eq!(risk("DROP INDEX missing_one"), Some(Risk::Unknown));
    // the parser does not read DROP INDEX CONCURRENTLY: the fallback does
    assert_eq!(report("DROP INDEX CONCURRENTLY IF EXISTS jobs_run_at", true).findings[0].risk, None);
    assert_eq!(risk("DROP INDEX CONCURRENTLY jobs_run_at"), Some(Risk::Fails));
    assert_eq!(report("DROP INDEX CONCURRENTLY users_telegram_id_key", true).findings[0].risk, Some(Risk::Breaks));
}

#[test]
fn constraints_go_in_not_valid_and_are_validated_by_a_later_migration() {
    assert_eq!(risk("ALTER TABLE payments ADD CONSTRAINT p CHECK (amount > 0)"), Some(Risk::Lock));
    assert_eq!(
        risk("ALTER TABLE payments ADD CONSTRAINT f FOREIGN KEY (user_id) REFERENCES users (id)"),
        Some(Risk::Lock)
    );
    assert_eq!(risk("ALTER TABLE payments ADD CONSTRAINT p CHECK (amount > 0) NOT VALID"), None);
    assert_eq!(
        risk("ALTER TABLE payments ADD CONSTRAINT f FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID"),
        None
    );
    assert_eq!(risk("ALTER TABLE payments VALIDATE CONSTRAINT p"), None);
    let same_file = "ALTER TABLE payments ADD CONSTRAINT p CHECK (amount > 0) NOT VALID;
                     ALTER TABLE payments VALIDATE CONSTRAINT p;";
    assert_eq!(risks(same_file), vec![None, Some(Risk::Lock)]);
    assert_eq!(risk("ALTER TABLE users ADD CONSTRAINT users_name_key UNIQUE (name)"), Some(Risk::Lock));
    assert_eq!(risk("ALTER TABLE users ADD CONSTRAINT users_name_key UNIQUE USING INDEX users_name"), None);
    assert_eq!(risk("ALTER TABLE users DROP CONSTRAINT users_name_check"), None);
    assert_eq!(risk("ALTER TABLE users DROP CONSTRAINT users_telegram_id_key"), Some(Risk::Breaks));
}

#[test]
fn drops_and_renames_break_the_previous_release() {
    for sql in [
        "ALTER TABLE users DROP COLUMN username",
        "ALTER TABLE users DROP COLUMN IF EXISTS username CASCADE",
        "DROP TABLE payments",
        "DROP TABLE IF EXISTS users, payments",
        "ALTER TABLE users RENAME COLUMN username TO handle",
        "ALTER TABLE users RENAME TO customers",
        "ALTER TABLE users RENAME CONSTRAINT a TO b",
        "ALTER INDEX users_telegram_id_key RENAME TO users_tg",
        "DROP FUNCTION f()",
        "DROP VIEW v",
        "TRUNCATE jobs",
    ] {
        assert_eq!(risk(sql), Some(Risk::Breaks), "{sql}");
    }
    assert_eq!(risk("ALTER INDEX jobs_run_at RENAME TO jobs_due"), None);
}

#[test]
fn what_the_pending_migrations_create_is_new_to_the_later_ones() {
    let first = Source {
        version: 1,
        description: "a",
        sql: "CREATE TABLE receipts (id BIGSERIAL PRIMARY KEY, payment_id BIGINT NOT NULL); \
              ALTER TABLE users ADD COLUMN nick TEXT;",
        no_tx: false,
    };
    let second = Source {
        version: 2,
        description: "b",
        sql: "CREATE INDEX receipts_payment ON receipts (payment_id);
              ALTER TABLE receipts ADD COLUMN at TIMESTAMPTZ NOT NULL, ALTER COLUMN payment_id TYPE INT;
              UPDATE receipts SET at = now();
              ALTER TABLE users DROP COLUMN nick, ALTER COLUMN nick2 SET NOT NULL;",
        no_tx: false,
    };
    let reports = analyse(&[first, second], &catalog());
    let risks: Vec<Option<Risk>> = reports[1].findings.iter().map(|f| f.risk).collect();
    assert_eq!(risks, vec![None, None, None, Some(Risk::Lock)], "{:?}", reports[1]);
    assert!(reports[1].findings[3].why.contains("SET NOT NULL"), "only the existing column is a problem");
}

#[test]
fn locks_vacuum_full_cluster_and_reindex() {
    assert_eq!(risk("LOCK TABLE jobs"), Some(Risk::Lock));
    assert_eq!(risk("LOCK TABLE jobs IN SHARE MODE"), Some(Risk::Lock));
    assert_eq!(risk("LOCK TABLE jobs IN ROW EXCLUSIVE MODE"), None);
    assert_eq!(risk("VACUUM FULL jobs"), Some(Risk::Rewrite));
    assert_eq!(risk("CLUSTER jobs USING jobs_run_at"), Some(Risk::Rewrite));
    assert_eq!(risk("REINDEX INDEX jobs_run_at"), Some(Risk::Lock));
    assert_eq!(report("REINDEX INDEX CONCURRENTLY jobs_run_at", true).findings[0].risk, None);
    assert_eq!(risk("VACUUM jobs"), Some(Risk::Fails));
    assert_eq!(risk("ALTER TABLE jobs SET UNLOGGED"), Some(Risk::Rewrite));
}

#[test]
fn backfills_are_safe_only_on_small_tables() {
    assert_eq!(risk("UPDATE jobs SET attempts = 0 WHERE attempts IS NULL"), Some(Risk::Lock));
    assert_eq!(risk("UPDATE users SET language = 'en' WHERE language IS NULL"), None);
    assert_eq!(risk("DELETE FROM payments"), Some(Risk::Lock));
    assert_eq!(risk("DELETE FROM users WHERE banned_at IS NOT NULL"), None);
    assert_eq!(risk("INSERT INTO users (telegram_id) VALUES (1) ON CONFLICT DO NOTHING"), None);
}

#[test]
fn an_alter_form_without_a_rule_is_judged_by_the_table_size() {
    let on = |t: &str| format!("ALTER TABLE {t} ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY");
    assert_eq!(risk(&on("users")), None);
    assert_eq!(risk(&on("jobs")), Some(Risk::Lock));
    assert_eq!(risk(&on("nowhere")), Some(Risk::Lock), "a table the database does not have");
    assert!(why(&on("fresh")).contains("never analysed"), "{}", why(&on("fresh")));
}

#[test]
fn what_the_checker_cannot_read_is_unsafe_until_reviewed() {
    assert_eq!(risk("DO $$ BEGIN UPDATE jobs SET attempts = 0; END $$"), Some(Risk::Unknown));
    assert_eq!(risk("FROBNICATE jobs"), Some(Risk::Unknown));
    assert_eq!(risk("COMMIT"), Some(Risk::Unknown));
    assert_eq!(risk("CREATE INDEX i ON jobs (kind) garbage"), Some(Risk::Unknown));
    let unterminated = report("SELECT 'oops", false);
    assert_eq!(unterminated.findings[0].risk, Some(Risk::Unknown), "{unterminated:?}");
}

#[test]
fn a_function_body_is_one_statement() {
    let sql = "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN NEW.updated_at = now(); RETURN NEW; END $$;
               CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();";
    assert_eq!(risks(sql), vec![None, None]);
}

#[test]
fn an_allow_directive_with_a_reason_makes_a_file_pass_and_is_reported() {
    let sql = "-- migrate-check: allow users has 1,200 rows; the index builds in milliseconds\n\
               CREATE INDEX users_lang ON users (language);";
    let r = report(sql, false);
    assert!(r.is_safe());
    assert_eq!(r.allowed.as_deref(), Some("users has 1,200 rows; the index builds in milliseconds"));
    assert_eq!(r.findings[0].risk, Some(Risk::Lock), "the finding stays visible");

    let r = report("-- migrate-check: allow\nCREATE INDEX users_lang ON users (language);", false);
    assert!(!r.is_safe(), "a reason is required");
    assert!(r.notes.iter().any(|n| n.contains("ignored")), "{:?}", r.notes);
}

#[test]
fn a_missing_lock_timeout_is_noted_but_not_unsafe() {
    let bare = report("ALTER TABLE jobs ADD COLUMN trace_parent TEXT;", false);
    assert!(bare.is_safe());
    assert!(bare.notes.iter().any(|n| n.contains("lock_timeout")), "{:?}", bare.notes);
    let guarded = report("SET LOCAL lock_timeout = '5s';\nALTER TABLE jobs ADD COLUMN trace_parent TEXT;", false);
    assert!(guarded.is_safe() && guarded.notes.is_empty(), "{guarded:?}");
    let new = report("CREATE TABLE t (id INT); CREATE INDEX t_id ON t (id);", false);
    assert!(new.notes.is_empty(), "{new:?}");
}

#[test]
fn comments_are_left_out_of_the_statements_shown() {
    let r = report("-- why\nALTER TABLE jobs /* inline */ ADD COLUMN x TEXT; -- trailing\n", false);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].statement, "ALTER TABLE jobs ADD COLUMN x TEXT");
}

#[test]
fn every_shipped_migration_is_understood_and_safe_on_a_fresh_database() {
    let sources: Vec<Source<'_>> = crate::db::MIGRATOR.iter().map(Source::from).collect();
    for report in analyse(&sources, &Catalog::default()) {
        for f in &report.findings {
            assert_ne!(f.risk, Some(Risk::Unknown), "{} not understood: {f:?}", report.version);
        }
        assert!(report.is_safe(), "on a fresh database every table is new: {report:?}");
    }
}

#[test]
fn a_shipped_migration_that_would_rewrite_a_live_inbox_is_caught() {
    let inbox = crate::db::MIGRATOR.iter().find(|m| m.description.contains("inbox json")).expect("migration");
    let mut catalog = Catalog::default();
    catalog.tables.insert("telegram_updates".into(), TableSize { rows: Some(5_000_000), bytes: 3 << 30 });
    let report = analyse(&[Source::from(inbox)], &catalog).remove(0);
    assert!(!report.is_safe());
    assert!(report.findings.iter().any(|f| f.risk == Some(Risk::Rewrite)), "{report:?}");
}
