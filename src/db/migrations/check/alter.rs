//! `ALTER TABLE`: each operation's lock, rewrite or break of the previous release. On a table the pending
//! migrations create, everything is safe (nothing uses it yet).

use sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnDef, ColumnOption, DataType, Expr, TableConstraint,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::statement::{ident, name};
use super::{Risk, State, Verdict, Volatility, risk, safe};

/// One verdict for the statement: its first risk with every unsafe reason, else every safe one.
fn combine(verdicts: Vec<Verdict>) -> Verdict {
    let first_risk = verdicts.iter().find_map(|(r, _)| *r);
    let mut reasons: Vec<String> = Vec::new();
    for (r, why) in verdicts {
        if r.is_some() == first_risk.is_some() && !reasons.contains(&why) {
            reasons.push(why);
        }
    }
    (first_risk, reasons.join("; "))
}

/// The functions an expression calls (a word followed by a parenthesis), lower case, and the keyword functions
/// written without one (CURRENT_TIMESTAMP, …).
fn called_functions(expr: &Expr) -> Vec<String> {
    let text = expr.to_string();
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, &text).tokenize() else { return Vec::new() };
    let tokens: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let mut names = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if let Token::Word(w) = t {
            let word = w.value.to_lowercase();
            let call = matches!(tokens.get(i + 1), Some(Token::LParen));
            let keyword_fn = w.quote_style.is_none()
                && matches!(word.as_str(), "current_timestamp" | "current_date" | "localtimestamp" | "current_time");
            if call || keyword_fn {
                names.push(word);
            }
        }
    }
    names
}

fn is_serial(data_type: &DataType) -> bool {
    let text = data_type.to_string().to_lowercase();
    matches!(text.as_str(), "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8")
}

impl State<'_> {
    pub(super) fn alter_table(&mut self, alter: &AlterTable) -> Verdict {
        let table = name(&alter.name);
        let new = self.locks(&table);
        let verdicts = alter.operations.iter().map(|op| self.operation(&table, new, op)).collect();
        combine(verdicts)
    }

    fn operation(&mut self, table: &str, new: bool, op: &AlterTableOperation) -> Verdict {
        use AlterTableOperation as Op;
        match op {
            Op::AddColumn { column_def, .. } => {
                let verdict =
                    if new { safe("adds a column to a new table") } else { self.add_column(table, column_def) };
                self.new_columns.insert((table.to_owned(), ident(&column_def.name)));
                verdict
            }
            Op::DropColumn { column_names, .. } => {
                let old: Vec<String> = column_names
                    .iter()
                    .map(ident)
                    .filter(|c| !new && !self.new_columns.contains(&(table.to_owned(), c.clone())))
                    .collect();
                if old.is_empty() {
                    return safe("drops a column the pending migrations add");
                }
                risk(
                    Risk::Breaks,
                    format!(
                        "the previous release still reads or writes {table}.{}: drop it in a later release, once no \
                         instance of the release that used it runs",
                        old.join(", ")
                    ),
                )
            }
            Op::AlterColumn { column_name, op } => self.alter_column(table, new, &ident(column_name), op),
            Op::AddConstraint { constraint, not_valid } => self.add_constraint(table, new, constraint, *not_valid),
            Op::ValidateConstraint { name: constraint } => {
                if self.not_valid_here.contains(&(table.to_owned(), ident(constraint))) {
                    return risk(
                        Risk::Lock,
                        format!(
                            "validates {} in the transaction that added it NOT VALID, so that ACCESS EXCLUSIVE lock \
                             is held while every row is checked: validate it in a later migration",
                            ident(constraint)
                        ),
                    );
                }
                safe("VALIDATE CONSTRAINT checks the rows under a SHARE UPDATE EXCLUSIVE lock: reads and writes go on")
            }
            Op::DropConstraint { name: constraint, .. } => {
                let unique = self.index(&ident(constraint)).is_some_and(|i| i.unique);
                if unique && !new {
                    return risk(
                        Risk::Breaks,
                        format!(
                            "drops the unique constraint {}: the previous release may rely on it (ON CONFLICT, \
                             unique-violation handling)",
                            ident(constraint)
                        ),
                    );
                }
                safe("drops a constraint (a moment's lock)")
            }
            Op::RenameColumn { old_column_name, new_column_name } => {
                let old = (table.to_owned(), ident(old_column_name));
                if new || self.new_columns.remove(&old) {
                    self.new_columns.insert((table.to_owned(), ident(new_column_name)));
                    return safe("renames a column the pending migrations add");
                }
                risk(
                    Risk::Breaks,
                    format!(
                        "the previous release still uses {table}.{}: add the new column, write both, and drop the old \
                         one in a later release",
                        old.1
                    ),
                )
            }
            Op::RenameTable { table_name } => {
                if new {
                    self.new_tables.remove(table);
                    let (sqlparser::ast::RenameTableNameKind::As(to) | sqlparser::ast::RenameTableNameKind::To(to)) =
                        table_name;
                    self.new_tables.insert(name(to));
                    return safe("renames a table the pending migrations create");
                }
                risk(Risk::Breaks, format!("the previous release still uses the table {table} by that name"))
            }
            Op::RenameConstraint { .. } if !new => risk(
                Risk::Breaks,
                "the previous release may know the constraint by its name (unique-violation handling)",
            ),
            Op::SetLogged | Op::SetUnlogged if !new => {
                risk(Risk::Rewrite, format!("rewrites {} under an ACCESS EXCLUSIVE lock", self.describe(table)))
            }
            Op::SetOptionsParens { .. } | Op::ResetOptions { .. } | Op::SetTblProperties { .. } => {
                safe("changes storage parameters (a moment's lock)")
            }
            Op::EnableTrigger { .. } | Op::DisableTrigger { .. } | Op::OwnerTo { .. } => {
                safe("a catalog change (a moment's lock)")
            }
            Op::AttachPartition { .. } if !new => {
                risk(Risk::Lock, format!("attaching a partition scans it under lock on {}", self.describe(table)))
            }
            _ if new => safe("changes a table the pending migrations create"),
            other => self.by_size(table, &other.to_string()),
        }
    }

    /// A form the checker has no rule for: fine on a small table, not on a large one.
    fn by_size(&self, table: &str, what: &str) -> Verdict {
        let what = what.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        if self.is_large(table) || !self.catalog.tables.contains_key(table) {
            risk(
                Risk::Lock,
                format!(
                    "{what} … takes an ACCESS EXCLUSIVE lock on {} and is not known to be quick on a large table",
                    self.describe(table)
                ),
            )
        } else {
            safe(format!("{what} … on a small table, {}", self.describe(table)))
        }
    }

    fn add_column(&mut self, table: &str, column: &ColumnDef) -> Verdict {
        let col = ident(&column.name);
        let at = self.describe(table);
        if is_serial(&column.data_type) {
            return risk(Risk::Rewrite, format!("a serial column fills every row from a sequence: rewrites {at}"));
        }
        let options: Vec<&ColumnOption> = column.options.iter().map(|o| &o.option).collect();
        let mut default = None;
        let mut not_null = false;
        for option in &options {
            match option {
                ColumnOption::Default(expr) => default = Some(expr),
                ColumnOption::NotNull => not_null = true,
                ColumnOption::Generated { .. } | ColumnOption::Identity(_) => {
                    return risk(
                        Risk::Rewrite,
                        format!("a generated or identity column is computed into every row: rewrites {at}"),
                    );
                }
                ColumnOption::PrimaryKey(_) | ColumnOption::Unique(_) => {
                    return risk(
                        Risk::Lock,
                        format!(
                            "builds a unique index on {at} under an ACCESS EXCLUSIVE lock: add the column, then \
                             CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT … USING INDEX"
                        ),
                    );
                }
                ColumnOption::Check(_) => {
                    return risk(
                        Risk::Lock,
                        format!(
                            "a CHECK added with the column checks every row of {at} under an ACCESS EXCLUSIVE lock: \
                             add the column, then the CHECK as a constraint NOT VALID, validated in a later migration"
                        ),
                    );
                }
                _ => {}
            }
        }
        let default = default.filter(|e| !matches!(e, Expr::Value(v) if v.value == sqlparser::ast::Value::Null));
        if let Some(expr) = default {
            let volatile: Vec<String> = called_functions(expr)
                .into_iter()
                .filter(|f| self.volatility(f).is_none_or(|v| v == Volatility::Volatile))
                .collect();
            if !volatile.is_empty() {
                return risk(
                    Risk::Rewrite,
                    format!(
                        "the default calls {} (volatile, or unknown to the database): every row gets its own value, \
                         so {at} is rewritten; add the column without it (or with a constant), backfill in batches, \
                         then SET DEFAULT",
                        volatile.iter().map(|f| format!("{f}()")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        let references = options.iter().any(|o| matches!(o, ColumnOption::ForeignKey(_)));
        if references && default.is_some() {
            return risk(
                Risk::Lock,
                format!(
                    "REFERENCES with a default checks every row of {at}: add the column, then the constraint NOT \
                     VALID, validated in a later migration"
                ),
            );
        }
        match (not_null, default.is_some()) {
            (true, false) => risk(
                Risk::Breaks,
                format!(
                    "{col} is NOT NULL without a default: the previous release's INSERTs into {table} do not name it \
                     and fail (and existing rows have no value); give it a constant default"
                ),
            ),
            (_, true) => {
                safe("adds a column with a non-volatile default: a catalog change (no rewrite since PostgreSQL 11)")
            }
            (false, false) if references => safe(
                "adds a nullable column with REFERENCES: no row has a value to check yet (a moment's lock on both tables)",
            ),
            (false, false) => safe("adds a nullable column: a catalog change only"),
        }
    }

    fn alter_column(&mut self, table: &str, new: bool, col: &str, op: &AlterColumnOperation) -> Verdict {
        use AlterColumnOperation as Col;
        let key = (table.to_owned(), col.to_owned());
        if new || self.new_columns.contains(&key) {
            return safe("changes a column the pending migrations add");
        }
        match op {
            Col::SetNotNull if self.catalog.not_null.contains(&key) => safe("the column is NOT NULL already"),
            Col::SetNotNull if self.catalog.not_null_checked.contains(&key) => safe(format!(
                "a validated CHECK ({col} IS NOT NULL) proves it: no scan (only once the previous release always \
                 writes {col})"
            )),
            Col::SetNotNull => risk(
                Risk::Lock,
                format!(
                    "SET NOT NULL checks every row of {} under an ACCESS EXCLUSIVE lock: first ADD CONSTRAINT … CHECK \
                     ({col} IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL",
                    self.describe(table)
                ),
            ),
            Col::DropNotNull => safe(format!(
                "a catalog change; but the previous release reads {col} as never NULL: write no NULL into it while \
                 that release runs"
            )),
            Col::SetDefault { .. } => safe("a new default applies to new rows only (a catalog change)"),
            Col::DropDefault => risk(
                Risk::Breaks,
                format!("the previous release's INSERTs may leave {col} to its default: drop it in a later release"),
            ),
            Col::SetDataType { .. } => risk(
                Risk::Rewrite,
                format!(
                    "changing {col}'s type rewrites {} and its indexes under an ACCESS EXCLUSIVE lock, and the \
                     previous release reads the old type: add a new column, backfill, switch, drop the old later",
                    self.describe(table)
                ),
            ),
            other => self.by_size(table, &format!("ALTER COLUMN {col} {other}")),
        }
    }

    fn add_constraint(&mut self, table: &str, new: bool, constraint: &TableConstraint, not_valid: bool) -> Verdict {
        let constraint_name = match constraint {
            TableConstraint::Check(c) => c.name.as_ref().map(ident),
            TableConstraint::ForeignKey(c) => c.name.as_ref().map(ident),
            _ => None,
        };
        if new {
            return safe("constrains a table the pending migrations create");
        }
        let at = self.describe(table);
        match constraint {
            TableConstraint::Check(_) | TableConstraint::ForeignKey(_) if not_valid => {
                if let Some(n) = constraint_name {
                    self.not_valid_here.insert((table.to_owned(), n));
                }
                safe("NOT VALID: checks new rows only, a moment's lock; VALIDATE it in a later migration")
            }
            TableConstraint::Check(_) => risk(
                Risk::Lock,
                format!(
                    "checks every row of {at} under an ACCESS EXCLUSIVE lock: add it NOT VALID and VALIDATE it in a \
                     later migration"
                ),
            ),
            TableConstraint::ForeignKey(fk) => risk(
                Risk::Lock,
                format!(
                    "checks every row of {at} while blocking writes to it and to {}: add it NOT VALID and VALIDATE \
                     it in a later migration",
                    name(&fk.foreign_table)
                ),
            ),
            TableConstraint::PrimaryKeyUsingIndex(_) | TableConstraint::UniqueUsingIndex(_) => safe(
                "uses an index built before (a moment's lock; a primary key's columns must already be NOT NULL or \
                 they are checked)",
            ),
            TableConstraint::PrimaryKey(_) | TableConstraint::Unique(_) => risk(
                Risk::Lock,
                format!(
                    "builds a unique index on {at} under an ACCESS EXCLUSIVE lock: CREATE UNIQUE INDEX CONCURRENTLY \
                     first, then ADD CONSTRAINT … USING INDEX"
                ),
            ),
            _ => risk(Risk::Lock, format!("builds an index or checks every row of {at} under lock")),
        }
    }
}
