//! Inventory: the catalog, stock per SKU per warehouse, the stock ledger, and locks (holds).
//!
//! Stock moves only here, and only through guarded statements: a lock takes stock with one
//! conditional `UPDATE … WHERE on_hand - locked >= qty`, and a lock row leaves `held` with a
//! compare-and-set, the stock following only when that row changed. Rows are always touched
//! in `(sku, warehouse)` order so concurrent checkouts cannot deadlock.

pub mod routes;

pub mod store;

use serde::Serialize;

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
