//! Step 1, lock: price the items from the catalog, write the order `pending` and lock its
//! stock, all in one transaction. Out of stock writes nothing.
//! Over 400 lines: the order's draft and its writes (`Draft`, `fill`) are shared by the
//! single path here and the flash-sale batches (`batch.rs`), and read best beside the one
//! path that uses them alone.

use serde_json::{json, Value};

use super::{OrderView, QuoteView};
use crate::db::{is_unique_violation, Script};
use axum::http::StatusCode;

use crate::error::{Error, Result};
use crate::idempotency::{complete_into, KeyRef};
use crate::ids::{random_token, sha256_hex, OrderId, Sku};
use crate::inventory;
use crate::metrics::Metrics;
use crate::notify::{Outbox, Type};
use crate::orders::{self, Line, NewOrder};
use crate::pricing::{self, CartLine, Invalid, Place, PriceError, Priced, Seller, TaxCode};
use crate::state::AppState;
use crate::timeline::{Kind, Steps};

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
    /// A coupon code, upper case.
    pub coupon: Option<String>,
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
            coupon: None,
        })
    }

    /// With a coupon code (case-insensitive: 1–32 of `A-Z 0-9 - _`); a code that cannot
    /// exist is a coupon that does not.
    pub fn with_coupon(mut self, code: Option<String>) -> Result<OrderInput> {
        if let Some(code) = code {
            let upper = code.to_ascii_uppercase();
            if !crate::pricing::coupon::valid_code(&upper) {
                return Err(Error::CouponInvalid {
                    code: upper,
                    reason: Invalid::Unknown.reason(),
                });
            }
            self.coupon = Some(upper);
        }
        Ok(self)
    }

    /// Where the order ships, for tax: `ship_to.country` (two letters) and `region`.
    pub(super) fn ship_to_place(&self) -> Result<Option<Place>> {
        let Some(ship_to) = &self.ship_to else {
            return Ok(None);
        };
        let code = |field: &str| -> Result<Option<String>> {
            match ship_to.get(field) {
                None => Ok(None),
                Some(Value::String(s))
                    if (1..=8).contains(&s.len())
                        && s.chars().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    Ok(Some(s.to_ascii_uppercase()))
                }
                Some(_) => Err(Error::invalid(format!(
                    "ship_to.{field} must be a country or region code"
                ))),
            }
        };
        let (country, region) = (code("country")?, code("region")?);
        Ok(country.map(|country| Place { country, region }))
    }

    /// `customer.id`, which the pending-order limit counts by; none, no limit.
    pub(super) fn customer_id(&self) -> Option<&str> {
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
/// an idempotency key, the answer is stored in the order's own transaction. An order of one
/// SKU with an id of Till's, no coupon and no counted customer (a flash sale's shape) joins
/// that SKU's batch (`batch.rs`); any other is created in a transaction of its own.
pub async fn create_order(
    state: &AppState,
    input: OrderInput,
    key: Option<&KeyRef>,
) -> Result<OrderView> {
    if super::batch::joins(state, &input) {
        return super::batch::create(state, input, key.cloned()).await;
    }
    let now = state.now_ms();
    let priced = price_cart(&mut *state.db.reads.acquire().await?, state, &input, now).await?;
    let draft = Draft::new(&input, &priced);
    let order = draft.order(state, &input, &priced, now);
    let mut tx = state.db.write().await?;
    // The order row first: a second request for the same client-chosen id waits here,
    // before it has locked any stock.
    match orders::store::insert(&mut tx, &order, now).await {
        Ok(()) => {}
        Err(err) if is_unique_violation(&err) && input.id.is_some() => {
            tx.rollback().await?;
            let mut conn = state.db.pool.acquire().await?;
            return existing_order(&mut conn, &draft.id, &draft.fingerprint).await;
        }
        Err(err) => return Err(err.into()),
    }
    match fill(&mut tx, state, &input, &draft, &order, key, now).await {
        Ok(view) => {
            tx.commit().await?;
            if let Some(key) = key {
                key.mark_answered();
            }
            Metrics::inc(&state.metrics.orders_created);
            Ok(view)
        }
        // A refusal rolls back what was written; a failure drops the transaction (which
        // rolls it back) and is answered as it is.
        Err(err) if !err.status().is_server_error() => {
            tx.rollback().await?;
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// What an order is written with besides its figures: its id, its client secret (and the
/// secret's hash), and the fingerprint of its items.
pub(super) struct Draft {
    pub id: OrderId,
    /// The client secret, answered once to the order's creator.
    pub secret: String,
    secret_hash: String,
    fingerprint: String,
    lines: Vec<Line>,
}

impl Draft {
    pub fn new(input: &OrderInput, priced: &Priced) -> Draft {
        let id = input
            .id
            .clone()
            .map(OrderId::from)
            .unwrap_or_else(OrderId::generate);
        let secret = format!("{id}_secret_{}", random_token(24));
        Draft {
            secret_hash: sha256_hex(secret.as_bytes()),
            secret,
            fingerprint: input.fingerprint(),
            lines: priced
                .lines
                .iter()
                .cloned()
                .map(super::views::line_of)
                .collect(),
            id,
        }
    }

    /// The order row as `orders::store::insert` writes it.
    pub fn order<'a>(
        &'a self,
        state: &AppState,
        input: &'a OrderInput,
        priced: &'a Priced,
        now: i64,
    ) -> NewOrder<'a> {
        NewOrder {
            id: &self.id,
            currency: state.currency,
            lines: &self.lines,
            subtotal: priced.subtotal,
            discount: priced.discount,
            tax: priced.tax,
            total: priced.total,
            tax_lines: &priced.tax_lines,
            coupon: priced.coupon.as_deref(),
            customer: input.customer.clone(),
            customer_id: input.customer_id(),
            ship_to: input.ship_to.clone(),
            secret_hash: &self.secret_hash,
            fingerprint: Some(&self.fingerprint),
            expires_at: now + state.hold_ttl_ms,
        }
    }
}

/// Everything after the order row, in its transaction: the customer's pending limit, the
/// coupon's use, the stock, the timeline, the event and the stored answer. A refusal (too
/// many pending orders, no use of the coupon left, out of stock) is an `Err` after which the
/// caller rolls back what was written.
pub(super) async fn fill(
    tx: &mut sqlx::AnyConnection,
    state: &AppState,
    input: &OrderInput,
    draft: &Draft,
    order: &NewOrder<'_>,
    key: Option<&KeyRef>,
    now: i64,
) -> Result<OrderView> {
    let id = &draft.id;
    // The customer's row, before any stock: one customer cannot hold more than
    // `max_pending_per_customer` pending orders, however many checkouts race.
    let max_pending = state.max_pending_per_customer;
    if let (Some(customer_id), 1..) = (input.customer_id(), max_pending) {
        if orders::store::pending_of_customer(&mut *tx, customer_id, now).await?
            > i64::from(max_pending)
        {
            return Err(Error::TooManyPendingOrders(max_pending));
        }
    }
    // Then the coupon's row: a use is reserved only while one is left, overall and for
    // this customer (the coupon before any stock, the same order as every other lock).
    if let Some(code) = order.coupon {
        if !pricing::store::reserve_use(&mut *tx, code, id, input.customer_id(), now).await? {
            return Err(Error::CouponExhausted(code.to_string()));
        }
    }
    let locking = inventory::store::lock_lines(&mut *tx, id, &input.lines, now).await?;
    if !locking.short.is_empty() {
        Metrics::inc(&state.metrics.orders_out_of_stock);
        return Err(Error::OutOfStock(locking.short));
    }
    // The rest reads nothing back: one script.
    let mut writes = Script::new();
    let mut steps = Steps::new(id, now);
    creation_steps(&mut steps, order, &locking.held);
    steps.flush_into(&mut writes);
    let mut view = new_view(order, now);
    let mut events = Outbox::new(now);
    events.add(Type::OrderCreated, &view)?;
    events.flush_into(&mut writes);
    view.client_secret = Some(draft.secret.clone());
    if let Some(key) = key {
        complete_into(&mut writes, key, StatusCode::CREATED, &view)?;
    }
    writes.run(&mut *tx).await?;
    Ok(view)
}

/// What `GET` would show of a new order inside its creating transaction, without reading it
/// back: the order as written, and no payment or refund yet. (The client secret goes only
/// into the creator's answer, after the event is written.)
pub(super) fn new_view(order: &NewOrder<'_>, now: i64) -> OrderView {
    OrderView {
        record: orders::record_of_new(order, now),
        client_secret: None,
        payments: Vec::new(),
        refunds: Vec::new(),
    }
}

/// The order's first steps on its timeline, written in its creating transaction: created,
/// its coupon's use reserved, its stock locked.
pub(super) fn creation_steps(steps: &mut Steps, order: &NewOrder<'_>, held: &[inventory::Held]) {
    let created = json!({"total": order.total, "currency": order.currency.code(), "lines": order.lines.len()});
    steps.add_for(order.id, Kind::OrderCreated, created);
    if let Some(code) = order.coupon {
        steps.add_for(
            order.id,
            Kind::CouponReserved,
            json!({"code": code, "discount": order.discount}),
        );
    }
    steps.add_for(order.id, Kind::StockLocked, json!({"locks": held}));
}

/// The figures an order of `input` would have now; locks and writes nothing.
pub async fn quote(state: &AppState, input: &OrderInput) -> Result<QuoteView> {
    let mut conn = state.db.pool.acquire().await?;
    let priced = price_cart(&mut conn, state, input, state.now_ms()).await?;
    Ok(QuoteView::new(priced, state.currency))
}

/// Prices the cart exactly as an order would be priced (`POST /v1/quotes` too): every line
/// from the catalog in the store currency (unknown SKUs are a 400), the coupon, and the
/// seller's tax for where it ships. Reads only.
pub async fn price_cart(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    input: &OrderInput,
    now: i64,
) -> Result<Priced> {
    let mut cart = Vec::with_capacity(input.lines.len());
    let mut unknown = Vec::new();
    // Lines often share a tax code: each is read once per cart.
    let mut tax_codes: Vec<(String, Option<TaxCode>)> = Vec::new();
    for (sku, qty) in &input.lines {
        let Some(product) = inventory::store::get_product(conn, sku.as_str()).await? else {
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
        let tax_code = match product.tax_code {
            Some(code) => match tax_codes.iter().find(|(c, _)| *c == code) {
                Some((_, known)) => known.clone(),
                None => {
                    let read = pricing::store::get_tax_code(conn, &code).await?;
                    tax_codes.push((code, read.clone()));
                    read
                }
            },
            None => None,
        };
        cart.push(CartLine {
            sku: sku.clone(),
            qty: *qty,
            unit_amount: product.price_minor,
            tax_code,
        });
    }
    if !unknown.is_empty() {
        return Err(Error::invalid(format!(
            "unknown sku: {}",
            unknown.join(", ")
        )));
    }
    let coupon = match &input.coupon {
        Some(code) => Some(
            pricing::store::get_coupon(conn, code)
                .await?
                .ok_or_else(|| Error::CouponInvalid {
                    code: code.clone(),
                    reason: Invalid::Unknown.reason(),
                })?
                .coupon,
        ),
        None => None,
    };
    let seller = pricing::store::get_tax_settings(conn)
        .await?
        .map(|t| Seller {
            origin: t.origin,
            prices_include_tax: t.prices_include_tax,
        });
    let ship_to = input.ship_to_place()?;
    pricing::price(
        &cart,
        coupon.as_ref(),
        seller.as_ref(),
        ship_to.as_ref(),
        now,
    )
    .map_err(|err| match err {
        PriceError::TooLarge => Error::invalid("order total is too large"),
        PriceError::Coupon(invalid) => Error::CouponInvalid {
            code: input.coupon.clone().unwrap_or_default(),
            reason: invalid.reason(),
        },
    })
}

/// A client-chosen id seen before: the same items give the same order back, other items 409.
async fn existing_order(
    conn: &mut sqlx::AnyConnection,
    id: &OrderId,
    fingerprint: &str,
) -> Result<OrderView> {
    let head = orders::store::head(conn, id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if head.fingerprint.as_deref() != Some(fingerprint) {
        return Err(Error::Conflict {
            code: "order_exists",
            message: format!("order {id} already exists with other items"),
        });
    }
    super::order_view(conn, id.as_str())
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
