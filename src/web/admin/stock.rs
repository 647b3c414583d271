//! Products and their stock: the catalog with stock over all warehouses, and one product's
//! stock per warehouse, its ledger, and the on-hand edit (`inventory::set_stock`, as `PUT
//! /v1/inventory/{sku}/warehouses/{warehouse}`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::page::{self, money, time, Notice, Page};
use super::session::Console;
use super::Form;
use crate::error::{Error, Result};
use crate::ids::Sku;
use crate::inventory::{self, store};
use crate::state::AppState;

/// Products on one page of the catalog.
const PAGE_SIZE: i64 = 100;
/// Ledger entries shown on a product's page.
const LEDGER_SHOWN: i64 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// The last SKU of the previous page.
    #[serde(default)]
    after: String,
}

/// `GET /admin/inventory`
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ListQuery>,
) -> Result<Page> {
    let mut conn = state.db.pool.acquire().await?;
    let products = store::list_products(&mut conn, &query.after, PAGE_SIZE).await?;
    let mut rows = Vec::new();
    for product in products {
        let stock = store::get_stock(&mut conn, &product.sku).await?;
        rows.push((product, stock));
    }
    let next = (rows.len() as i64 == PAGE_SIZE).then(|| rows.last().map(|(p, _)| p.sku.clone()));
    let body = html! {
        table.inventory {
            thead { tr { th { "SKU" } th { "Name" } th.num { "Price" } th { "Tax code" } th.num { "On hand" } th.num { "Held" } th.num { "Available" } } }
            tbody {
                @for (p, s) in &rows {
                    tr {
                        td { a href={ "/admin/inventory/" (p.sku) } { code { (p.sku) } } }
                        td { (p.name) }
                        td.num { (money(p.price_minor, &p.currency)) }
                        td { (p.tax_code.as_deref().unwrap_or("")) }
                        td.num { (s.on_hand) }
                        td.num { (s.locked) }
                        td.num { (s.available) }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No products yet: add them with " code { "PUT /v1/products/{sku}" } "." } }
        @if let Some(Some(last)) = next {
            nav.pages aria-label="Pages" { a href={ "/admin/inventory?after=" (last) } { "More" } }
        }
    };
    Ok(page::console(
        "Inventory",
        "/admin/inventory",
        &console.csrf(),
        body,
    ))
}

/// `GET /admin/inventory/{sku}`
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Path(sku): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response> {
    let mut conn = state.db.pool.acquire().await?;
    let Some(product) = store::get_product(&mut conn, &sku).await? else {
        return Ok(not_found());
    };
    let stock = store::get_stock(&mut conn, &sku).await?;
    let ledger = store::ledger(&mut conn, &sku, LEDGER_SHOWN).await?;
    let csrf = console.csrf();
    let action = format!("/admin/inventory/{sku}/stock");
    let body = html! {
        (notice.render())
        p { (product.name) " · " (money(product.price_minor, &product.currency)) }
        section aria-labelledby="warehouses" {
            h2 #warehouses { "Stock per warehouse" }
            table.stock {
                thead { tr { th { "Warehouse" } th.num { "On hand" } th.num { "Held" } th.num { "Available" } th { "Set on hand" } } }
                tbody {
                    @for w in &stock.warehouses {
                        tr data-warehouse=(w.warehouse) {
                            td { (w.warehouse) }
                            td.num { (w.on_hand) }
                            td.num { (w.locked) }
                            td.num { (w.available) }
                            td {
                                form.stock-edit method="post" action=(action) {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="warehouse" value=(w.warehouse);
                                    label { span.visually-hidden { "On hand in " (w.warehouse) }
                                        input type="number" name="on_hand" min=(w.locked) max=(inventory::ON_HAND_MAX) value=(w.on_hand) required;
                                    }
                                    button type="submit" { "Save" }
                                }
                            }
                        }
                    }
                }
                tfoot { tr { th { "All" } td.num { (stock.on_hand) } td.num { (stock.locked) } td.num { (stock.available) } td {} } }
            }
            form.stock-add method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                label { "Warehouse" input type="text" name="warehouse" required maxlength="64"; }
                label { "On hand" input type="number" name="on_hand" min="0" max=(inventory::ON_HAND_MAX) required; }
                button type="submit" { "Set stock" }
            }
        }
        section aria-labelledby="ledger" {
            h2 #ledger { "Stock ledger" }
            table.ledger {
                thead { tr { th { "When" } th { "Warehouse" } th { "Kind" } th.num { "Units" } th { "Order" } } }
                tbody {
                    @for e in &ledger {
                        tr {
                            td { (time(e.at)) }
                            td { (e.warehouse) }
                            td { (e.kind) }
                            td.num { @if e.delta > 0 { "+" } (e.delta) }
                            td { @if let Some(order) = &e.order_id { a href={ "/admin/orders/" (order) } { code { (order) } } } }
                        }
                    }
                }
            }
            @if ledger.is_empty() { p { "No stock movements yet." } }
        }
        p { a href="/admin/inventory" { "All products" } }
    };
    Ok(page::console(&format!("Stock of {sku}"), "/admin/inventory", &csrf, body).into_response())
}

fn not_found() -> Response {
    page::message(
        StatusCode::NOT_FOUND,
        "No such product",
        "There is no product with this SKU.",
    )
}

#[derive(Deserialize)]
pub struct StockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    warehouse: String,
    #[serde(default)]
    on_hand: String,
}

/// `POST /admin/inventory/{sku}/stock`
pub async fn set_stock(
    State(state): State<AppState>,
    console: Console,
    Path(sku): Path<String>,
    Form(form): Form<StockForm>,
) -> Result<Response> {
    if let Err(refused) = console.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    // Only a real SKU goes back into a URL.
    if Sku::try_from(sku.as_str()).is_err() {
        return Ok(not_found());
    }
    let outcome = match form.on_hand.trim().parse::<i64>() {
        Err(_) => Err("On hand must be a whole number of units".to_string()),
        Ok(on_hand) => {
            match inventory::set_stock(&state, &sku, form.warehouse.trim(), on_hand).await {
                Ok(_) => Ok(()),
                Err(Error::NotFound(_)) => return Ok(not_found()),
                Err(err @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(err),
                Err(err) => Err(err.to_string()),
            }
        }
    };
    let outcome = outcome.map(|()| format!("{} set", form.warehouse.trim()));
    Ok(Redirect::to(&format!(
        "/admin/inventory/{sku}?{}",
        Notice::query(outcome)
    ))
    .into_response())
}
