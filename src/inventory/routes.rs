//! HTTP routes of the catalog and inventory (API key only).

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Product, Stock};
use crate::error::{Error, Result};
use crate::http::extract::{not_null, object, parse_json, Caller, RawBody};
use crate::ids::Sku;
use crate::money::{Currency, PRICE_MINOR_MAX};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products/{sku}", put(put_product).get(get_product))
        .route("/v1/inventory/{sku}/warehouses/{warehouse}", put(put_stock))
        .route("/v1/inventory/{sku}", get(get_stock))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    /// 1-200 characters.
    name: String,
    #[serde(deserialize_with = "object")]
    price: Price,
    /// 1-64 characters.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    tax_code: Option<String>,
}

/// A price: minor units in the store currency.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Minor units, 0 up to `PRICE_MINOR_MAX`.
    #[schema(minimum = 0)]
    amount: i64,
    /// ISO 4217; must be the store currency.
    currency: String,
}

/// A product of the catalog.
#[derive(Serialize, ToSchema)]
pub struct ProductView {
    sku: String,
    /// Always `product`.
    #[schema(value_type = String, pattern = "^product$")]
    object: &'static str,
    name: String,
    price: Price,
    #[schema(required = true)]
    tax_code: Option<String>,
}

fn product_view(p: Product) -> ProductView {
    ProductView {
        sku: p.sku,
        object: "product",
        name: p.name,
        price: Price {
            amount: p.price_minor,
            currency: p.currency,
        },
        tax_code: p.tax_code,
    }
}

async fn put_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<ProductView>> {
    caller.require_merchant()?;
    let sku = Sku::try_from(sku.as_str()).map_err(Error::InvalidRequest)?;
    let body: ProductBody = parse_json(&body)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name must be 1-200 characters"));
    }
    let currency = Currency::parse(&body.price.currency)
        .ok_or_else(|| Error::invalid(format!("unsupported currency {:?}", body.price.currency)))?;
    if currency != state.currency {
        return Err(Error::invalid(format!(
            "prices must be in the store currency {}",
            state.currency
        )));
    }
    if !(0..=PRICE_MINOR_MAX).contains(&body.price.amount) {
        return Err(Error::invalid(format!(
            "price.amount must be 0-{PRICE_MINOR_MAX} minor units"
        )));
    }
    if body
        .tax_code
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.len() > 64)
    {
        return Err(Error::invalid("tax_code must be 1-64 characters"));
    }
    let product = Product {
        sku: sku.as_str().to_string(),
        name: name.to_string(),
        price_minor: body.price.amount,
        currency: currency.code().to_string(),
        tax_code: body.tax_code,
    };
    let mut conn = state.db.pool.acquire().await?;
    let saved = super::store::upsert_product(&mut conn, &product, state.now_ms()).await?;
    Ok(Json(product_view(saved)))
}

async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<ProductView>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    let product = super::store::get_product(&mut conn, &sku)
        .await?
        .ok_or(Error::NotFound("product"))?;
    Ok(Json(product_view(product)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockBody {
    /// Physical units in the warehouse, 0-1000000000; not below what is locked.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    on_hand: i64,
}

async fn put_stock(
    State(state): State<AppState>,
    caller: Caller,
    Path((sku, warehouse)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Json<Stock>> {
    caller.require_merchant()?;
    let body: StockBody = parse_json(&body)?;
    Ok(Json(
        super::set_stock(&state, &sku, &warehouse, body.on_hand).await?,
    ))
}

async fn get_stock(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
) -> Result<Json<Stock>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    if super::store::get_product(&mut conn, &sku).await?.is_none() {
        return Err(Error::NotFound("product"));
    }
    Ok(Json(super::store::get_stock(&mut conn, &sku).await?))
}
