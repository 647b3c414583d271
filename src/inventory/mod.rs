//! Inventory: the catalog, stock per SKU per warehouse, the stock ledger, and locks (holds).
//!
//! Stock moves only here, and only through guarded statements: a lock takes stock with one
//! conditional `UPDATE … WHERE on_hand - locked >= qty`, and a lock row leaves `held` with a
//! compare-and-set, the stock following only when that row changed. Rows are always touched
//! in `(sku, warehouse)` order so concurrent checkouts cannot deadlock.

pub mod routes;

pub mod store;

use serde::Serialize;
use sqlx::Connection;

use crate::error::{Error, Result};
use crate::ids::{check_client_id, Sku};
use crate::state::AppState;

/// Physical stock in one warehouse may not exceed this; it keeps sums far from overflow.
pub const ON_HAND_MAX: i64 = 1_000_000_000;

/// Sets a product's physical stock in one warehouse (`PUT
/// /v1/inventory/{sku}/warehouses/{warehouse}` and the console's edit): the SKU, warehouse
/// and units checked, the product required, the difference in the ledger. Answers the
/// SKU's stock after it.
pub async fn set_stock(
    state: &AppState,
    sku: &str,
    warehouse: &str,
    on_hand: i64,
) -> Result<Stock> {
    let sku = Sku::try_from(sku).map_err(Error::InvalidRequest)?;
    check_client_id("warehouse", warehouse).map_err(Error::InvalidRequest)?;
    if !(0..=ON_HAND_MAX).contains(&on_hand) {
        return Err(Error::invalid(format!("on_hand must be 0-{ON_HAND_MAX}")));
    }
    let mut conn = state.db.pool.acquire().await?;
    if store::get_product(&mut conn, sku.as_str()).await?.is_none() {
        return Err(Error::NotFound("product"));
    }
    let mut tx = conn.begin().await?;
    store::set_on_hand(
        &mut tx,
        &sku,
        warehouse,
        on_hand,
        state.now_ms(),
        state.db.kind,
    )
    .await?;
    tx.commit().await?;
    store::get_stock(&mut conn, sku.as_str()).await
}

#[derive(Clone, Debug, Serialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub tax_code: Option<String>,
}

/// Stock of one SKU in one warehouse.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WarehouseStock {
    pub warehouse: String,
    pub on_hand: i64,
    pub locked: i64,
    pub available: i64,
}

/// Stock of one SKU over all warehouses, as `GET /v1/inventory/{sku}` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Stock {
    pub sku: String,
    pub on_hand: i64,
    pub locked: i64,
    pub available: i64,
    pub warehouses: Vec<WarehouseStock>,
}

/// One movement of stock in the ledger: `kind` is `adjustment` (an on-hand edit) or
/// `sale` (a confirmed order's stock leaving); `delta` its units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub warehouse: String,
    pub kind: String,
    pub delta: i64,
    pub order_id: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

/// What locking an order's lines did: the locks taken (a line may be spread over
/// warehouses), and the SKUs that fell short (then the caller rolls it all back).
#[derive(Clone, Debug, Default)]
pub struct Locking {
    pub held: Vec<Held>,
    pub short: Vec<String>,
}

/// One lock taken: `qty` of `sku` held in `warehouse` for an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Held {
    pub sku: String,
    pub warehouse: String,
    pub qty: i64,
}

/// Where a held lock goes: back to available stock, or out of the building with the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockEnd {
    Released,
    Committed,
}
