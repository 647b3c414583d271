//! The demo catalog: a few example products with stock, so a new shop can be tried at once —
//! stocked on start with `--demo-catalog`, or by the button an empty shop shows. Only an
//! empty catalog is stocked, so a shop with real products never gets them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use sqlx::Connection;

use crate::error::{Error, Result};
use crate::ids::Sku;
use crate::inventory::{self, Product};
use crate::state::AppState;
use crate::web::{csrf, see_other};

/// SKU, name, price in minor units of the store currency, units in stock.
const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("DEMO-TEE", "Cotton tee", 49900, 50),
    ("DEMO-MUG", "Stoneware mug", 34900, 50),
    ("DEMO-NOTEBOOK", "Dot-grid notebook", 19900, 50),
];

/// The warehouse the demo stock is in.
const WAREHOUSE: &str = "main";

#[derive(Deserialize)]
struct DemoForm {
    csrf: String,
}

/// `POST /shop/demo-catalog`: the empty shop's button. A shop with any product is left as
/// it is, so the button can add nothing to a real catalog.
pub async fn add(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let stocked = async {
        let form: DemoForm = serde_urlencoded::from_bytes(&body)
            .map_err(|_| Error::invalid("the form did not parse"))?;
        csrf::check(&headers, &form.csrf)?;
        stock(&state).await
    }
    .await;
    match stocked {
        Ok(()) => see_other("/shop"),
        Err(err) => super::error_page(err),
    }
}

/// Stocks the example products, in one transaction, if the catalog is empty.
pub async fn stock(state: &AppState) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    if !inventory::store::catalog(&mut tx, 1).await?.is_empty() {
        return Ok(());
    }
    let now = state.now_ms();
    for (sku, name, price_minor, units) in PRODUCTS {
        let product = Product {
            sku: sku.to_string(),
            name: name.to_string(),
            price_minor: *price_minor,
            currency: state.currency.code().to_string(),
            tax_code: None,
        };
        inventory::store::upsert_product(&mut tx, &product, now).await?;
        let sku = Sku::try_from(*sku).map_err(Error::InvalidRequest)?;
        inventory::store::set_on_hand(&mut tx, &sku, WAREHOUSE, *units, now, state.db.kind).await?;
    }
    tx.commit().await?;
    tracing::info!("stocked the demo catalog: {} products", PRODUCTS.len());
    Ok(())
}
