//! Every statement but `ALTER TABLE` (see `alter.rs`): what it locks, rewrites or takes away.

use sqlparser::ast::{
    AlterIndexOperation, AlterTypeOperation, CreateIndex, Ident, LockTableMode, ObjectName, ObjectType, Statement,
    TableFactor, TableWithJoins,
};

use super::{File, Index, Risk, State, Verdict, outside_transaction, risk, safe};

/// A name as PostgreSQL folds it: unquoted identifiers are lower case; the schema is dropped.
pub(super) fn name(object: &ObjectName) -> String {
    object.0.last().and_then(|part| part.as_ident()).map(ident).unwrap_or_default()
}

pub(super) fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

impl State<'_> {
    pub(super) fn statement(&mut self, stmt: &Statement, file: &File) -> Verdict {
        match stmt {
            Statement::CreateTable(t) => {
                let table = name(&t.name);
                for c in &t.columns {
                    self.new_columns.insert((table.clone(), ident(&c.name)));
                }
                self.new_tables.insert(table);
                safe("creates a table")
            }
            Statement::CreateIndex(index) => self.create_index(index, file),
            Statement::AlterTable(alter) => self.alter_table(alter),
            Statement::AlterIndex { name: index, operation: AlterIndexOperation::RenameIndex { .. } } => {
                match self.index(&name(index)) {
                    Some(Index { unique: true, table }) if !self.is_new(table) => risk(
                        Risk::Breaks,
                        "renames a unique index: the previous release may name it (ON CONFLICT ON CONSTRAINT, \
                         unique-violation handling)",
                    ),
                    _ => safe("renames an index (a catalog change)"),
                }
            }
            Statement::Drop { object_type, names, .. } => self.drop(*object_type, names),
            Statement::DropFunction(_) | Statement::DropTrigger(_) => risk(
                Risk::Breaks,
                "drops something the previous release may rely on: drop it in a later release, once nothing uses it",
            ),
            Statement::Lock(lock) => self.lock(lock),
            Statement::Vacuum(v) if v.full => risk(
                Risk::Rewrite,
                "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock: leave space to autovacuum, or use \
                 pg_repack outside migrations",
            ),
            Statement::Vacuum(_) => {
                outside_transaction(file, "VACUUM", "VACUUM does not block reads or writes".to_owned())
            }
            Statement::Analyze(_) => safe("ANALYZE reads a sample and blocks no reads or writes"),
            Statement::Update(u) => self.rows_changed("UPDATE", &u.table, u.selection.is_none()),
            Statement::Delete(d) => {
                let tables: Vec<&TableWithJoins> = match &d.from {
                    sqlparser::ast::FromTable::WithFromKeyword(t) | sqlparser::ast::FromTable::WithoutKeyword(t) => {
                        t.iter().collect()
                    }
                };
                match tables.first() {
                    Some(t) => self.rows_changed("DELETE", t, d.selection.is_none()),
                    None => risk(Risk::Unknown, "a DELETE without a table the checker can see"),
                }
            }
            Statement::Insert(_) => safe("inserts rows"),
            Statement::Query(_) => safe("reads"),
            Statement::Truncate(t) => {
                let names: Vec<String> = t.table_names.iter().map(|n| name(&n.name)).collect();
                if names.iter().all(|n| self.is_new(n)) {
                    safe("empties a table the pending migrations create")
                } else {
                    risk(
                        Risk::Breaks,
                        format!(
                            "TRUNCATE removes every row of {} under an ACCESS EXCLUSIVE lock",
                            names.iter().map(|n| self.describe(n)).collect::<Vec<_>>().join(", ")
                        ),
                    )
                }
            }
            Statement::Set(_) | Statement::Reset(_) => safe("a setting of the migration's session or transaction"),
            Statement::CreateFunction(f) if f.or_replace => safe(
                "replaces a function: keep what the previous release calls it for working the same (checked by hand)",
            ),
            Statement::CreateFunction(_) => safe("creates a function"),
            Statement::CreateTrigger(t) => {
                let table = name(&t.table_name);
                self.locks(&table);
                safe(format!("a moment's SHARE ROW EXCLUSIVE lock on {}", self.describe(&table)))
            }
            Statement::AlterType(t) => match t.operation {
                AlterTypeOperation::AddValue(_) => safe("adds a value to a type"),
                _ => risk(Risk::Breaks, "renames a type or its value: the previous release still uses the old name"),
            },
            Statement::Comment { .. }
            | Statement::CreateType { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateView(_)
            | Statement::CreateExtension(_)
            | Statement::CreateSchema { .. }
            | Statement::CreateDomain(_)
            | Statement::Grant(_)
            | Statement::Revoke(_) => safe("a catalog change that takes no lock on existing tables"),
            Statement::StartTransaction { .. } | Statement::Commit { .. } | Statement::Rollback { .. } => risk(
                Risk::Unknown,
                "controls the transaction sqlx runs the migration in (sqlx records the migration in it)",
            ),
            other => {
                let kind = other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                risk(Risk::Unknown, format!("the checker does not know what {kind} … locks or changes"))
            }
        }
    }

    fn create_index(&mut self, index: &CreateIndex, file: &File) -> Verdict {
        let table = name(&index.table_name);
        if let Some(n) = &index.name {
            self.new_indexes.insert(name(n), Index { table: table.clone(), unique: index.unique });
        }
        if index.concurrently {
            return outside_transaction(
                file,
                "CREATE INDEX CONCURRENTLY",
                "builds the index without blocking writes (if it fails it leaves an INVALID index: drop it with \
                 DROP INDEX CONCURRENTLY before the retry)"
                    .to_owned(),
            );
        }
        if self.locks(&table) {
            return safe("indexes a table the pending migrations create");
        }
        risk(
            Risk::Lock,
            format!(
                "builds the index while blocking every write to {}: use CREATE INDEX CONCURRENTLY, alone in a \
                 migration that starts with -- no-transaction",
                self.describe(&table)
            ),
        )
    }

    fn drop(&mut self, object_type: ObjectType, names: &[ObjectName]) -> Verdict {
        let names: Vec<String> = names.iter().map(name).collect();
        match object_type {
            ObjectType::Table => {
                let old: Vec<&String> = names.iter().filter(|n| !self.is_new(n)).collect();
                if old.is_empty() {
                    return safe("drops a table the pending migrations create");
                }
                let tables = old.iter().map(|n| self.describe(n)).collect::<Vec<_>>().join(", ");
                risk(
                    Risk::Breaks,
                    format!(
                        "the previous release still uses {tables}: drop it in a later release, once no instance of \
                         the release that used it runs"
                    ),
                )
            }
            ObjectType::Index => {
                let mut verdict = safe("drops an index of a table the pending migrations create");
                for index in &names {
                    let Some(Index { table, unique }) = self.index(index).cloned() else {
                        verdict = risk(Risk::Unknown, format!("drops {index}, an index the database does not have"));
                        continue;
                    };
                    if self.locks(&table) {
                        continue;
                    }
                    verdict = if unique {
                        risk(
                            Risk::Breaks,
                            format!(
                                "drops the unique index {index}: the previous release may rely on it (ON CONFLICT, \
                                 unique-violation handling)"
                            ),
                        )
                    } else {
                        risk(
                            Risk::Lock,
                            format!(
                                "DROP INDEX waits for and then blocks every query on {}: use DROP INDEX \
                                 CONCURRENTLY, alone in a migration that starts with -- no-transaction",
                                self.describe(&table)
                            ),
                        )
                    };
                }
                verdict
            }
            _ => risk(
                Risk::Breaks,
                "drops something the previous release may rely on: drop it in a later release, once nothing uses it",
            ),
        }
    }

    fn lock(&mut self, lock: &sqlparser::ast::Lock) -> Verdict {
        let blocks_writes = match lock.lock_mode {
            Some(LockTableMode::AccessShare | LockTableMode::RowShare | LockTableMode::RowExclusive) => false,
            Some(LockTableMode::ShareUpdateExclusive) => false,
            // ACCESS EXCLUSIVE when no mode is given
            _ => true,
        };
        let tables: Vec<String> = lock.tables.iter().map(|t| name(&t.name)).collect();
        let old: Vec<String> = tables.iter().filter(|t| !self.locks(t)).cloned().collect();
        if !blocks_writes || old.is_empty() {
            return safe("a lock that lets reads and writes go on");
        }
        risk(
            Risk::Lock,
            format!(
                "LOCK TABLE blocks writes to {} until the migration commits",
                old.iter().map(|t| self.describe(t)).collect::<Vec<_>>().join(", ")
            ),
        )
    }

    /// An UPDATE or DELETE: every row it changes stays locked until the migration commits.
    fn rows_changed(&mut self, what: &str, target: &TableWithJoins, every_row: bool) -> Verdict {
        let TableFactor::Table { name: table, .. } = &target.relation else {
            return risk(Risk::Unknown, format!("an {what} of something other than a table"));
        };
        let table = name(table);
        if self.is_new(&table) {
            return safe(format!("{what} of a table the pending migrations create"));
        }
        let scope = if every_row { "every row" } else { "every matching row" };
        if self.is_large(&table) || !self.catalog.tables.contains_key(&table) {
            risk(
                Risk::Lock,
                format!(
                    "{what} locks {scope} of {} until the migration commits: backfill in batches outside the \
                     migration",
                    self.describe(&table)
                ),
            )
        } else {
            safe(format!("{what} of {scope} of a small table, {}", self.describe(&table)))
        }
    }
}
