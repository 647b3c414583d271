//! `--demo-catalog`: a few example products with stock, so a new shop can be tried at once.
//! Only an empty catalog is stocked, so a shop with real products never gets them.

use crate::error::Result;
use crate::ids::Sku;
use crate::inventory::{self, Product};
use crate::state::AppState;

/// SKU, name, price in minor units of the store currency, units in stock.
const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("DEMO-TEE", "Cotton tee", 49900, 50),
    ("DEMO-MUG", "Stoneware mug", 34900, 50),
    ("DEMO-NOTEBOOK", "Dot-grid notebook", 19900, 50),
];

/// The warehouse the demo stock is in.
const WAREHOUSE: &str = "main";

pub async fn stock(state: &AppState) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    if !inventory::store::catalog(&mut conn, 1).await?.is_empty() {
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
        inventory::store::upsert_product(&mut conn, &product, now).await?;
        let sku = Sku::try_from(*sku).map_err(crate::error::Error::InvalidRequest)?;
        inventory::store::set_on_hand(&mut conn, &sku, WAREHOUSE, *units, now, state.db.kind)
            .await?;
    }
    tracing::info!("stocked the demo catalog: {} products", PRODUCTS.len());
    Ok(())
}
