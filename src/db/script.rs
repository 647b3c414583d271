//! Writes sent together: the statements at the end of a transaction that read nothing back
//! (a confirmation's document, timeline steps, events and stored answer; a batch's orders).
//!
//! On SQLite a script is one text of several statements, which the driver
//! (`crates/sqlite-inline`) runs in turn, binding each `$N` from one list of values: one
//! call, with its statements kept prepared under that text.
//!
//! PostgreSQL refuses several statements in one prepared query, but one statement may carry
//! others in its `WITH` clause (`WITH w0 AS (INSERT …), w1 AS (UPDATE …) INSERT …`): one
//! round trip, and outside a transaction one commit. Those run against one snapshot, in no
//! set order, so a statement joins others only when none of them writes its table (the
//! rows of one table keep the order they were given in); a table written twice starts a
//! new statement.

use sqlx::AnyConnection;

/// A value bound to a statement of a script.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Bind {
        Bind::Int(Some(v))
    }
}

impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Bind {
        Bind::Int(v)
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Bind {
        Bind::Text(Some(v))
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Bind {
        Bind::Text(Some(v.to_string()))
    }
}

impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Bind {
        Bind::Text(v)
    }
}

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Bind {
        Bind::Text(v.map(str::to_string))
    }
}

/// One statement of a script: its text, numbered from `$1`, and its values; on SQLite,
/// another text for the same values where one was given (`push_or_on_sqlite`).
#[derive(Debug)]
struct Statement {
    sql: String,
    on_sqlite: Option<String>,
    binds: Vec<Bind>,
}

/// Statements to run in order, in the caller's transaction. Outside one, each text sent
/// commits on its own: on SQLite each of its statements, on PostgreSQL the one statement.
#[derive(Debug, Default)]
pub struct Script {
    statements: Vec<Statement>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// The script `build` writes: for a store's function that runs its own statements at
    /// once, `Script::of(|s| x_into(s, …)).run(conn)`.
    pub fn of(build: impl FnOnce(&mut Script)) -> Script {
        let mut script = Script::new();
        build(&mut script);
        script
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Adds a statement whose placeholders `$1`, `$2`, … name `binds` in order.
    pub fn push(&mut self, sql: impl Into<String>, binds: Vec<Bind>) {
        self.statements.push(Statement {
            sql: sql.into(),
            on_sqlite: None,
            binds,
        });
    }

    /// Adds a statement run as `sql` on PostgreSQL and as `on_sqlite` (which may be several
    /// statements) on SQLite, both numbering the same `binds` from `$1`.
    pub fn push_or_on_sqlite(
        &mut self,
        sql: impl Into<String>,
        on_sqlite: impl Into<String>,
        binds: Vec<Bind>,
    ) {
        self.statements.push(Statement {
            sql: sql.into(),
            on_sqlite: Some(on_sqlite.into()),
            binds,
        });
    }

    /// Runs the statements in order, as few round trips as the backend allows.
    pub async fn run(self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let sqlite = conn.backend_name() == "SQLite";
        for (sql, binds) in self.joined(sqlite) {
            bound(&sql, binds).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The texts to send and their values: on SQLite one text of all the statements; on
    /// PostgreSQL each run of statements on different tables as one (`WITH`), the last of
    /// them the main statement. Each statement's placeholders are moved past the values of
    /// those before it in its text.
    fn joined(self, sqlite: bool) -> Vec<(String, Vec<Bind>)> {
        let runs = if sqlite {
            let on_sqlite = self.statements.into_iter().map(|s| Statement {
                sql: s.on_sqlite.unwrap_or(s.sql),
                on_sqlite: None,
                binds: s.binds,
            });
            vec![on_sqlite.collect()]
        } else {
            runs_on_distinct_tables(self.statements)
        };
        runs.into_iter()
            .filter(|run| !run.is_empty())
            .map(|run| {
                let mut parts = Vec::with_capacity(run.len());
                let mut binds = Vec::new();
                for s in run {
                    parts.push(renumbered(&s.sql, binds.len()));
                    binds.extend(s.binds);
                }
                let main = parts.pop().expect("a run holds a statement");
                let sql = if parts.is_empty() {
                    main
                } else if sqlite {
                    format!("{};\n{main}", parts.join(";\n"))
                } else {
                    let with: Vec<String> = parts
                        .iter()
                        .enumerate()
                        .map(|(i, part)| format!("w{i} AS ({part})"))
                        .collect();
                    format!("WITH {} {main}", with.join(", "))
                };
                (sql, binds)
            })
            .collect()
    }
}

/// PostgreSQL's runs: a statement joins the run before it when it writes a table none of
/// that run's statements writes; one that writes no table it can name runs alone.
fn runs_on_distinct_tables(statements: Vec<Statement>) -> Vec<Vec<Statement>> {
    let mut runs: Vec<Vec<Statement>> = Vec::new();
    // The tables the last run writes; `None` when no statement may join it.
    let mut written: Option<Vec<String>> = None;
    for s in statements {
        let t = table(&s.sql).map(str::to_string);
        let joins = matches!((&written, &t), (Some(tables), Some(t)) if !tables.contains(t));
        if !joins {
            runs.push(Vec::new());
            written = Some(Vec::new());
        }
        match (t, &mut written) {
            (Some(t), Some(tables)) => tables.push(t),
            _ => written = None,
        }
        runs.last_mut().expect("a run was started").push(s);
    }
    runs
}

/// The table a write statement writes (`INSERT INTO t`, `UPDATE t`, `DELETE FROM t`);
/// `None` for any other statement, which then joins no other on PostgreSQL.
fn table(sql: &str) -> Option<&str> {
    let mut words = sql.split_whitespace();
    let first = words.next()?;
    let name = if first.eq_ignore_ascii_case("INSERT") || first.eq_ignore_ascii_case("DELETE") {
        words.next()?;
        words.next()?
    } else if first.eq_ignore_ascii_case("UPDATE") {
        words.next()?
    } else {
        return None;
    };
    Some(name.split('(').next().unwrap_or(name))
}

fn bound(
    sql: &str,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = match b {
            Bind::Int(v) => query.bind(v),
            Bind::Text(v) => query.bind(v),
        };
    }
    query
}

/// `sql` with every placeholder `$N` made `$N+by`. Till's statements quote no `$`, so every
/// `$` followed by digits is a placeholder.
fn renumbered(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let n: usize = rest[..digits].parse().unwrap_or(0);
            out.push_str(&(n + by).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_move_past_the_values_before_them() {
        assert_eq!(renumbered("VALUES ($1, $2, $1)", 0), "VALUES ($1, $2, $1)");
        assert_eq!(
            renumbered("VALUES ($2, $1, $10), ($11, $1)", 3),
            "VALUES ($5, $4, $13), ($14, $4)"
        );
        assert_eq!(renumbered("a $ b $x", 2), "a $ b $x");
    }

    #[test]
    fn a_script_joins_statements_and_their_values_in_order() {
        let script = || {
            let mut script = Script::new();
            script.push(
                "INSERT INTO a (x, y, z) VALUES ($1, $2, $1)",
                vec![1.into(), "x".into()],
            );
            script.push(
                "UPDATE b SET c = $2 WHERE d = $1",
                vec![None::<i64>.into(), "y".into()],
            );
            script.push("INSERT INTO a(x) VALUES ($1)", vec![2.into()]);
            script.push("SELECT 1", vec![]);
            script.push("DELETE FROM c WHERE e = $1", vec![3.into()]);
            script
        };
        let sqlite = script().joined(true);
        assert_eq!(sqlite.len(), 1);
        assert_eq!(
            sqlite[0].0,
            "INSERT INTO a (x, y, z) VALUES ($1, $2, $1);\nUPDATE b SET c = $4 WHERE d = $3;\n\
             INSERT INTO a(x) VALUES ($5);\nSELECT 1;\nDELETE FROM c WHERE e = $6"
        );
        assert_eq!(
            sqlite[0].1,
            vec![
                Bind::Int(Some(1)),
                Bind::Text(Some("x".into())),
                Bind::Int(None),
                Bind::Text(Some("y".into())),
                Bind::Int(Some(2)),
                Bind::Int(Some(3)),
            ]
        );
        // PostgreSQL: `a` written again starts a new statement, and so does one that
        // writes no table it can name; each is numbered from `$1`.
        let pg = script().joined(false);
        let texts: Vec<&str> = pg.iter().map(|(sql, _)| sql.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "WITH w0 AS (INSERT INTO a (x, y, z) VALUES ($1, $2, $1)) UPDATE b SET c = $4 WHERE d = $3",
                "INSERT INTO a(x) VALUES ($1)",
                "SELECT 1",
                "DELETE FROM c WHERE e = $1",
            ]
        );
        assert_eq!(pg[1].1, vec![Bind::Int(Some(2))]);
        assert_eq!(pg[3].1, vec![Bind::Int(Some(3))]);
    }

    #[test]
    fn the_table_a_statement_writes() {
        assert_eq!(
            table("\n INSERT INTO timeline (a) VALUES ($1)"),
            Some("timeline")
        );
        assert_eq!(table("insert into events(a) VALUES ($1)"), Some("events"));
        assert_eq!(
            table("UPDATE idempotency_keys SET a = 1"),
            Some("idempotency_keys")
        );
        assert_eq!(table("DELETE FROM locks WHERE a = 1"), Some("locks"));
        assert_eq!(table("SELECT 1"), None);
        assert_eq!(table("WITH x AS (SELECT 1) INSERT INTO a VALUES (1)"), None);
    }
}
