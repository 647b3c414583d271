//! Step 1, lock: price the items from the catalog, write the order `pending` and lock its
//! stock, all in one transaction. Out of stock writes nothing.

use serde_json::Value;
use sqlx::Connection;

use super::OrderView;
use crate::db::is_unique_violation;
use axum::http::StatusCode;

use crate::error::{Error, Result};
use crate::idempotency::{complete_in, KeyRef};
use crate::ids::{new_id, random_token, sha256_hex, Sku};
use crate::inventory;
use crate::metrics::Metrics;
use crate::money;
use crate::orders::{self, Line, NewOrder};
use crate::state::AppState;

/// The most lines an order may have.
pub const LINES_MAX: usize = 100;
/// The most units of one SKU in an order.
pub const QTY_MAX: i64 = 1000;

/// A validated checkout request: lines merged by SKU and sorted (the lock order).
pub struct OrderInput {
    /// A client-chosen id (the seed's `/inventory/lock`); generated when absent.
    pub id: Option<String>,
    pub lines: Vec<(Sku, i64)>,
    pub customer: Option<Value>,
    pub ship_to: Option<Value>,
}

impl OrderInput {
    /// Merges repeated SKUs and checks the quantity limits.
    pub fn new(
        id: Option<String>,
        items: Vec<(Sku, i64)>,
        customer: Option<Value>,
        ship_to: Option<Value>,
    ) -> Result<OrderInput> {
        if items.is_empty() || items.len() > LINES_MAX {
            return Err(Error::invalid(format!(
                "items must have 1-{LINES_MAX} lines"
            )));
        }
        let mut lines: Vec<(Sku, i64)> = Vec::with_capacity(items.len());
        for (sku, qty) in items {
            if !(1..=QTY_MAX).contains(&qty) {
                return Err(Error::invalid(format!(
                    "qty for {} must be 1-{QTY_MAX}",
                    sku.as_str()
                )));
            }
            match lines.iter_mut().find(|(s, _)| *s == sku) {
                Some((_, total)) => *total += qty,
                None => lines.push((sku, qty)),
            }
        }
        if let Some((sku, _)) = lines.iter().find(|(_, q)| *q > QTY_MAX) {
            return Err(Error::invalid(format!(
                "qty for {} must be 1-{QTY_MAX} in all",
                sku.as_str()
            )));
        }
        lines.sort();
        Ok(OrderInput {
            id,
            lines,
            customer,
            ship_to,
        })
    }

    /// `customer.id`, which the pending-order limit counts by; none, no limit.
    fn customer_id(&self) -> Option<&str> {
        self.customer.as_ref()?.get("id")?.as_str()
    }

    /// Identifies the items, so a client-chosen id reused with other items is caught.
    fn fingerprint(&self) -> String {
        let text: Vec<String> = self
            .lines
            .iter()
            .map(|(s, q)| format!("{}x{q}", s.as_str()))
            .collect();
        sha256_hex(text.join(",").as_bytes())
    }
}

/// Creates the order and answers with its view (with `client_secret` when it is new). With
/// an idempotency key, the answer is stored in the order's own transaction.
pub async fn create_order(
    state: &AppState,
    input: OrderInput,
    key: Option<&KeyRef>,
) -> Result<OrderView> {
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let lines = price(&mut conn, state, &input.lines).await?;
    let subtotal = money::sum(lines.iter().map(|l| l.amount))
        .ok_or_else(|| Error::invalid("order total is too large"))?;
    let (discount, tax) = (0, 0);
    let total = subtotal - discount + tax;
    let id = input.id.clone().unwrap_or_else(|| new_id("ord"));
    let secret = format!("{id}_secret_{}", random_token(24));
    let secret_hash = sha256_hex(secret.as_bytes());
    let fingerprint = input.fingerprint();
    let order = NewOrder {
        id: &id,
        currency: state.currency.code(),
        lines: &lines,
        subtotal,
        discount,
        tax,
        total,
        customer: input.customer.clone(),
        customer_id: input.customer_id(),
        ship_to: input.ship_to.clone(),
        secret_hash: &secret_hash,
        fingerprint: Some(&fingerprint),
        expires_at: now + state.hold_ttl_ms,
    };
    let mut tx = conn.begin().await?;
    // The order row first: a second request for the same client-chosen id waits here,
    // before it has locked any stock.
    match orders::insert(&mut tx, &order, now).await {
        Ok(()) => {}
        Err(err) if is_unique_violation(&err) && input.id.is_some() => {
            tx.rollback().await?;
            return existing_order(&mut conn, &id, &fingerprint).await;
        }
        Err(err) => return Err(err.into()),
    }
    // Then the customer's row, before any stock: one customer cannot hold more than
    // `max_pending_per_customer` pending orders, however many checkouts race.
    let max_pending = state.max_pending_per_customer;
    if let (Some(customer_id), 1..) = (input.customer_id(), max_pending) {
        if orders::pending_of_customer(&mut tx, customer_id, now).await? > i64::from(max_pending) {
            tx.rollback().await?;
            return Err(Error::TooManyPendingOrders(max_pending));
        }
    }
    let short = inventory::lock_lines(&mut tx, &id, &input.lines, now).await?;
    if !short.is_empty() {
        tx.rollback().await?;
        Metrics::inc(&state.metrics.orders_out_of_stock);
        return Err(Error::OutOfStock(short));
    }
    let mut order = super::order_view(&mut tx, &id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    order.client_secret = Some(secret);
    if let Some(key) = key {
        complete_in(&mut tx, key, StatusCode::CREATED, &order).await?;
    }
    tx.commit().await?;
    Metrics::inc(&state.metrics.orders_created);
    Ok(order)
}

/// Prices every line from the catalog in the store currency; unknown SKUs are a 400.
async fn price(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    lines: &[(Sku, i64)],
) -> Result<Vec<Line>> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut unknown = Vec::new();
    for (sku, qty) in lines {
        let Some(product) = inventory::get_product(conn, sku.as_str()).await? else {
            unknown.push(sku.as_str().to_string());
            continue;
        };
        if product.currency != state.currency.code() {
            return Err(Error::invalid(format!(
                "{} is priced in {}, the store sells in {}",
                product.sku,
                product.currency,
                state.currency.code()
            )));
        }
        let amount = money::line_amount(product.price_minor, *qty)
            .ok_or_else(|| Error::invalid("line amount is too large"))?;
        priced.push(Line {
            sku: product.sku,
            qty: *qty,
            unit_amount: product.price_minor,
            amount,
        });
    }
    if !unknown.is_empty() {
        return Err(Error::invalid(format!(
            "unknown sku: {}",
            unknown.join(", ")
        )));
    }
    Ok(priced)
}

/// A client-chosen id seen before: the same items give the same order back, other items 409.
async fn existing_order(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    fingerprint: &str,
) -> Result<OrderView> {
    let head = orders::head(conn, id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if head.fingerprint.as_deref() != Some(fingerprint) {
        return Err(Error::Conflict {
            code: "order_exists",
            message: format!("order {id} already exists with other items"),
        });
    }
    super::order_view(conn, id)
        .await?
        .ok_or(Error::NotFound("order"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(i: usize) -> Sku {
        Sku::try_from(format!("S{i}").as_str()).unwrap()
    }

    proptest::proptest! {
        /// Merging keeps every SKU's total, sorts the lines (the lock order) and refuses only
        /// what breaks a limit.
        #[test]
        fn lines_merge_and_sort(items in proptest::collection::vec((0usize..5, -2i64..700), 0..110)) {
            let input: Vec<(Sku, i64)> = items.iter().map(|(s, q)| (sku(*s), *q)).collect();
            let mut totals = std::collections::BTreeMap::new();
            for (s, q) in &input {
                *totals.entry(s.clone()).or_insert(0i64) += q;
            }
            let valid = !input.is_empty()
                && input.len() <= LINES_MAX
                && input.iter().all(|(_, q)| (1..=QTY_MAX).contains(q))
                && totals.values().all(|t| *t <= QTY_MAX);
            match OrderInput::new(None, input, None, None) {
                Ok(order) => {
                    proptest::prop_assert!(valid);
                    let merged: std::collections::BTreeMap<Sku, i64> = order.lines.iter().cloned().collect();
                    proptest::prop_assert_eq!(merged, totals);
                    proptest::prop_assert!(order.lines.windows(2).all(|w| w[0].0 < w[1].0));
                }
                Err(Error::InvalidRequest(_)) => proptest::prop_assert!(!valid),
                Err(other) => proptest::prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
