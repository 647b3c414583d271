//! The inventory store: every statement on `products`, `inventory`, `stock_ledger` and
//! `locks`. Stock moves only through the guarded statements here (see the module's doc).

use sqlx::AnyConnection;

use super::{Held, LedgerEntry, LockEnd, Locking, Product, Stock, WarehouseStock};
use crate::db::{Kind, Script};
use crate::error::{Error, Result};
use crate::ids::{new_id, OrderId, Sku};
use crate::multirow;

/// A lock that moves concurrently with ours makes a conditional update miss; each miss means
/// another checkout took stock, so a few re-reads per warehouse always settle it.
const LOCK_RETRIES_PER_WAREHOUSE: usize = 8;

pub async fn upsert_product(conn: &mut AnyConnection, p: &Product, now: i64) -> Result<Product> {
    sqlx::query(
        "INSERT INTO products (sku, name, price_minor, currency, tax_code, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_minor = excluded.price_minor,
           currency = excluded.currency, tax_code = excluded.tax_code, updated_at = excluded.updated_at",
    )
    .bind(&p.sku)
    .bind(&p.name)
    .bind(p.price_minor)
    .bind(&p.currency)
    .bind(&p.tax_code)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(p.clone())
}

pub async fn get_product(conn: &mut AnyConnection, sku: &str) -> Result<Option<Product>> {
    let row: Option<(String, String, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT sku, name, price_minor, currency, tax_code FROM products WHERE sku = $1",
    )
    .bind(sku)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(
        row.map(|(sku, name, price_minor, currency, tax_code)| Product {
            sku,
            name,
            price_minor,
            currency,
            tax_code,
        }),
    )
}

/// The catalog as a shop shows it: up to `limit` products by name, each with the units
/// available now over all its warehouses.
pub async fn catalog(conn: &mut AnyConnection, limit: i64) -> Result<Vec<(Product, i64)>> {
    let rows: Vec<(String, String, i64, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT p.sku, p.name, p.price_minor, p.currency, p.tax_code,
           CAST(COALESCE((SELECT SUM(CASE WHEN i.on_hand > i.locked THEN i.on_hand - i.locked ELSE 0 END)
                          FROM inventory i WHERE i.sku = p.sku), 0) AS BIGINT)
         FROM products p ORDER BY p.name, p.sku LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, name, price_minor, currency, tax_code, available)| {
            let product = Product {
                sku,
                name,
                price_minor,
                currency,
                tax_code,
            };
            (product, available)
        })
        .collect())
}

/// Sets physical stock in one warehouse and records the difference in the ledger. Refused
/// (409) if it would put `on_hand` below what is locked.
pub async fn set_on_hand(
    conn: &mut AnyConnection,
    sku: &Sku,
    warehouse: &str,
    on_hand: i64,
    now: i64,
    kind: Kind,
) -> Result<()> {
    sqlx::query("INSERT INTO inventory (sku, warehouse, on_hand, locked) VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING")
        .bind(sku.as_str())
        .bind(warehouse)
        .execute(&mut *conn)
        .await?;
    let (old, locked): (i64, i64) = sqlx::query_as(&format!(
        "SELECT on_hand, locked FROM inventory WHERE sku = $1 AND warehouse = $2{}",
        kind.for_update()
    ))
    .bind(sku.as_str())
    .bind(warehouse)
    .fetch_one(&mut *conn)
    .await?;
    if on_hand < locked {
        return Err(Error::Conflict {
            code: "stock_below_locked",
            message: format!("on_hand {on_hand} is below the {locked} units locked in {warehouse}"),
        });
    }
    // The new figure and its ledger line, together.
    let mut writes = Script::new();
    writes.push(
        "UPDATE inventory SET on_hand = $1 WHERE sku = $2 AND warehouse = $3",
        vec![on_hand.into(), sku.as_str().into(), warehouse.into()],
    );
    if on_hand != old {
        record_ledger_into(
            &mut writes,
            sku.as_str(),
            warehouse,
            "adjustment",
            on_hand - old,
            None,
            now,
        );
    }
    writes.run(conn).await?;
    Ok(())
}

fn record_ledger_into(
    script: &mut Script,
    sku: &str,
    warehouse: &str,
    kind: &str,
    delta: i64,
    order_id: Option<&str>,
    now: i64,
) {
    script.push(
        "INSERT INTO stock_ledger (sku, warehouse, kind, delta, order_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            sku.into(),
            warehouse.into(),
            kind.into(),
            delta.into(),
            order_id.into(),
            now.into(),
        ],
    );
}

pub async fn get_stock(conn: &mut AnyConnection, sku: &str) -> Result<Stock> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT warehouse, on_hand, locked FROM inventory WHERE sku = $1 ORDER BY warehouse",
    )
    .bind(sku)
    .fetch_all(&mut *conn)
    .await?;
    let warehouses: Vec<WarehouseStock> = rows
        .into_iter()
        .map(|(warehouse, on_hand, locked)| WarehouseStock {
            warehouse,
            on_hand,
            locked,
            available: (on_hand - locked).max(0),
        })
        .collect();
    let on_hand = warehouses.iter().map(|w| w.on_hand).sum();
    let locked = warehouses.iter().map(|w| w.locked).sum();
    Ok(Stock {
        sku: sku.to_string(),
        on_hand,
        locked,
        available: warehouses.iter().map(|w| w.available).sum(),
        warehouses,
    })
}

/// The units of `sku` free to lock now, over all its warehouses, and the currency it is
/// priced in; `None` when the catalog has no such product. One read: the flash-sale path
/// answers `out_of_stock` from it before pricing or queueing (see `checkout::batch`).
pub async fn available(conn: &mut AnyConnection, sku: &str) -> Result<Option<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT p.currency, CAST(COALESCE((SELECT SUM(i.on_hand - i.locked) FROM inventory i
                                           WHERE i.sku = p.sku AND i.on_hand > i.locked), 0) AS BIGINT)
         FROM products p WHERE p.sku = $1",
    )
    .bind(sku)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Locks `qty` of every SKU for `order_id`, spreading a line over warehouses in name order.
/// Returns the locks taken and the SKUs that fell short; the caller rolls the transaction
/// back if any did.
/// `lines` must be sorted by SKU (the fixed order that keeps concurrent lockers deadlock-free).
pub async fn lock_lines(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    lines: &[(Sku, i64)],
    now: i64,
) -> Result<Locking> {
    debug_assert!(
        lines.windows(2).all(|w| w[0].0 < w[1].0),
        "lines must be sorted and unique"
    );
    let mut locking = Locking::default();
    for (sku, qty) in lines {
        let remaining =
            lock_one_sku(conn, order_id, sku.as_str(), *qty, now, &mut locking.held).await?;
        if remaining > 0 {
            locking.short.push(sku.as_str().to_string());
        }
    }
    Ok(locking)
}

/// Takes up to `qty` of one SKU, warehouse by warehouse, adding each lock to `held`; returns
/// how much could not be had.
async fn lock_one_sku(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    sku: &str,
    qty: i64,
    now: i64,
    held: &mut Vec<Held>,
) -> Result<i64> {
    let warehouses: Vec<String> = sqlx::query_scalar(
        "SELECT warehouse FROM inventory WHERE sku = $1 AND on_hand > locked ORDER BY warehouse",
    )
    .bind(sku)
    .fetch_all(&mut *conn)
    .await?;
    let mut remaining = qty;
    for warehouse in warehouses {
        if remaining == 0 {
            break;
        }
        let taken = take_from_warehouse(conn, sku, &warehouse, remaining).await?;
        if taken > 0 {
            let lock = Held {
                sku: sku.to_string(),
                warehouse: warehouse.clone(),
                qty: taken,
            };
            insert_locks(conn, &[(order_id, &lock)], now).await?;
            held.push(lock);
            remaining -= taken;
        }
    }
    Ok(remaining)
}

/// Locks stock of one SKU for each of a batch's orders, in the order given: each gets its
/// whole quantity, spread over warehouses in name order, or nothing (an empty `Vec`) when
/// less is left. The SKU's rows are read once under lock (held to the transaction's end),
/// what each order gets is decided from them, and each warehouse's share is taken with one
/// update. The locks, which read nothing back, join `writes` (one statement per run of
/// them), for the caller to run with the orders before it commits.
pub async fn lock_for_orders(
    conn: &mut AnyConnection,
    writes: &mut Script,
    kind: Kind,
    sku: &Sku,
    wants: &[(&OrderId, i64)],
    now: i64,
) -> Result<Vec<Vec<Held>>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT warehouse, on_hand - locked FROM inventory WHERE sku = $1 ORDER BY warehouse{}",
        kind.for_update()
    ))
    .bind(sku.as_str())
    .fetch_all(&mut *conn)
    .await?;
    // Each warehouse: what is free, and what this batch takes of it.
    let mut shares: Vec<(String, i64, i64)> = rows
        .into_iter()
        .map(|(warehouse, free)| (warehouse, free.max(0), 0))
        .collect();
    let mut grants = Vec::with_capacity(wants.len());
    for (_, qty) in wants {
        let left: i64 = shares.iter().map(|(_, free, _)| free).sum();
        let mut held = Vec::new();
        let mut needed = if left >= *qty { *qty } else { 0 };
        for (warehouse, free, taken) in shares.iter_mut() {
            let take = needed.min(*free);
            if take > 0 {
                *free -= take;
                *taken += take;
                needed -= take;
                held.push(Held {
                    sku: sku.as_str().to_string(),
                    warehouse: warehouse.clone(),
                    qty: take,
                });
            }
        }
        grants.push(held);
    }
    for (warehouse, _, taken) in shares.iter().filter(|(_, _, taken)| *taken > 0) {
        if !lock_units(conn, sku.as_str(), warehouse, *taken).await? {
            return Err(Error::Internal(anyhow::anyhow!(
                "the stock of {} in {warehouse} moved while the batch held it",
                sku.as_str()
            )));
        }
    }
    let locks: Vec<(&OrderId, &Held)> = wants
        .iter()
        .zip(&grants)
        .flat_map(|((order_id, _), held)| held.iter().map(move |lock| (*order_id, lock)))
        .collect();
    insert_locks_into(writes, &locks, now);
    Ok(grants)
}

/// Writes held locks, with one statement per run of them (`multirow::runs`).
async fn insert_locks(
    conn: &mut AnyConnection,
    locks: &[(&OrderId, &Held)],
    now: i64,
) -> Result<()> {
    Ok(Script::of(|s| insert_locks_into(s, locks, now))
        .run(conn)
        .await?)
}

/// `insert_locks`'s statements, added to `script`.
fn insert_locks_into(script: &mut Script, locks: &[(&OrderId, &Held)], now: i64) {
    for run in multirow::runs(locks.len()) {
        let sql = format!(
            "INSERT INTO locks (id, order_id, sku, warehouse, qty, state, created_at, updated_at)
             VALUES {}",
            multirow::values("(?, ?, ?, ?, ?, 'held', $1, $1)", run.len(), 2)
        );
        let mut binds = Vec::with_capacity(1 + 5 * run.len());
        binds.push(now.into());
        for (order_id, lock) in &locks[run] {
            binds.extend([
                new_id("lck").into(),
                order_id.as_str().into(),
                lock.sku.as_str().into(),
                lock.warehouse.as_str().into(),
                lock.qty.into(),
            ]);
        }
        script.push(sql, binds);
    }
}

/// Locks `n` units of the SKU in the warehouse if that many are free: a conditional update,
/// so stock is never locked past what is on hand. Returns whether it took them.
async fn lock_units(conn: &mut AnyConnection, sku: &str, warehouse: &str, n: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE inventory SET locked = locked + $1 WHERE sku = $2 AND warehouse = $3 AND on_hand - locked >= $1",
    )
    .bind(n)
    .bind(sku)
    .bind(warehouse)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// One warehouse's share: ask for everything still needed in one conditional update; if the
/// warehouse has less, re-read what it has and ask for exactly that.
async fn take_from_warehouse(
    conn: &mut AnyConnection,
    sku: &str,
    warehouse: &str,
    wanted: i64,
) -> Result<i64> {
    let mut ask = wanted;
    for _ in 0..LOCK_RETRIES_PER_WAREHOUSE {
        if lock_units(conn, sku, warehouse, ask).await? {
            return Ok(ask);
        }
        let available: Option<i64> = sqlx::query_scalar(
            "SELECT on_hand - locked FROM inventory WHERE sku = $1 AND warehouse = $2",
        )
        .bind(sku)
        .bind(warehouse)
        .fetch_optional(&mut *conn)
        .await?;
        ask = available.unwrap_or(0).min(wanted);
        if ask <= 0 {
            return Ok(0);
        }
    }
    Ok(0)
}

/// Moves every `held` lock of the order to `end` with one compare-and-set, so a second call
/// (or a call after the other end) changes nothing, then gives each lock's units back to its
/// warehouse (or out of it, recorded in the ledger), in SKU and warehouse order. Returns how
/// many locks moved.
pub async fn settle_locks(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    end: LockEnd,
    now: i64,
) -> Result<usize> {
    let state = match end {
        LockEnd::Released => "released",
        LockEnd::Committed => "committed",
    };
    let mut moved: Vec<(String, String, i64)> = sqlx::query_as(
        "UPDATE locks SET state = $1, updated_at = $2 WHERE order_id = $3 AND state = 'held'
         RETURNING sku, warehouse, qty",
    )
    .bind(state)
    .bind(now)
    .bind(order_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    // The stock rows in the order every transaction takes them in.
    moved.sort();
    let stock_sql = match end {
        LockEnd::Released => {
            "UPDATE inventory SET locked = locked - $1 WHERE sku = $2 AND warehouse = $3"
        }
        LockEnd::Committed => {
            "UPDATE inventory SET locked = locked - $1, on_hand = on_hand - $1 WHERE sku = $2 AND warehouse = $3"
        }
    };
    // Sent together: each stock row's update in that order, and its ledger line.
    let mut writes = Script::new();
    for (sku, warehouse, qty) in &moved {
        writes.push(
            stock_sql,
            vec![
                (*qty).into(),
                sku.as_str().into(),
                warehouse.as_str().into(),
            ],
        );
        if end == LockEnd::Committed {
            record_ledger_into(
                &mut writes,
                sku,
                warehouse,
                "sale",
                -qty,
                Some(order_id.as_str()),
                now,
            );
        }
    }
    writes.run(conn).await?;
    Ok(moved.len())
}

/// The catalog in SKU order, `limit` products from the first SKU after `after`.
pub async fn list_products(
    conn: &mut AnyConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<Product>> {
    let rows: Vec<(String, String, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT sku, name, price_minor, currency, tax_code FROM products WHERE sku > $1 ORDER BY sku LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, name, price_minor, currency, tax_code)| Product {
            sku,
            name,
            price_minor,
            currency,
            tax_code,
        })
        .collect())
}

/// The latest `limit` entries of one SKU's stock ledger, newest first.
pub async fn ledger(conn: &mut AnyConnection, sku: &str, limit: i64) -> Result<Vec<LedgerEntry>> {
    let rows: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
        "SELECT warehouse, kind, delta, order_id, created_at FROM stock_ledger WHERE sku = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(sku)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(warehouse, kind, delta, order_id, at)| LedgerEntry {
            warehouse,
            kind,
            delta,
            order_id,
            at,
        })
        .collect())
}

/// Units held by checkouts right now, over every SKU and warehouse.
pub async fn held_units(conn: &mut AnyConnection) -> Result<i64> {
    let held: Option<i64> = sqlx::query_scalar("SELECT CAST(SUM(locked) AS BIGINT) FROM inventory")
        .fetch_one(&mut *conn)
        .await?;
    Ok(held.unwrap_or(0))
}
