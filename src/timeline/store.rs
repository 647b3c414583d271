//! The timeline store: every statement on `timeline`.

use serde_json::Value;
use sqlx::AnyConnection;

use super::{Entry, Kind};
use crate::db::{Bind, Script};
use crate::error::{corrupt, Result};
use crate::ids::OrderId;
use crate::multirow;

/// Appends one step in the caller's transaction; the serial key orders the steps.
pub async fn insert(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    kind: Kind,
    detail: &Value,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO timeline (order_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
        .bind(order_id.as_str())
        .bind(now)
        .bind(kind.as_str())
        .bind(detail.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends `steps`, of one order or several, in the caller's transaction with one statement
/// per run of them (`multirow::runs`), in the order given (the serial key is taken row by
/// row, so they read back in that order).
pub async fn insert_all(
    conn: &mut AnyConnection,
    steps: &[(OrderId, Kind, Value)],
    now: i64,
) -> Result<()> {
    Ok(Script::of(|s| insert_all_into(s, steps, now))
        .run(conn)
        .await?)
}

/// `insert_all`'s statements, added to `script` for the caller to run with its other writes.
pub fn insert_all_into(script: &mut Script, steps: &[(OrderId, Kind, Value)], now: i64) {
    for run in multirow::runs(steps.len()) {
        let sql = format!(
            "INSERT INTO timeline (order_id, at, kind, detail) VALUES {}",
            multirow::values("(?, $1, ?, ?)", run.len(), 2)
        );
        let mut binds = Vec::with_capacity(1 + 3 * run.len());
        binds.push(Bind::from(now));
        for (order_id, kind, detail) in &steps[run] {
            binds.push(order_id.as_str().into());
            binds.push(kind.as_str().into());
            binds.push(detail.to_string().into());
        }
        script.push(sql, binds);
    }
}

/// Every step of the order, in the order they were written.
pub async fn for_order(conn: &mut AnyConnection, order_id: &OrderId) -> Result<Vec<Entry>> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT at, kind, detail FROM timeline WHERE order_id = $1 ORDER BY id")
            .bind(order_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|(at, kind, detail)| {
            Ok(Entry {
                at,
                kind: Kind::try_from(kind.as_str())?,
                detail: serde_json::from_str(&detail)
                    .map_err(|_| corrupt("timeline.detail", &detail))?,
            })
        })
        .collect()
}
