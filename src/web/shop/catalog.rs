//! `GET /shop`: every product with its price, how the price stands to tax (the seller's
//! settings: inclusive, or tax added at checkout), what is left in stock, and a form to add
//! it to the cart. A shop with no products says how to add some.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::cart::{Cart, QTY_MAX};
use super::{money, respond, SITE};
use crate::error::Result;
use crate::inventory;
use crate::pricing;
use crate::state::AppState;
use crate::web::{csrf, layout};

/// The most products one page lists.
const PRODUCTS_MAX: i64 = 200;

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match render(&state, &headers).await {
        Ok(response) => response,
        Err(err) => super::error_page(err),
    }
}

async fn render(state: &AppState, headers: &HeaderMap) -> Result<Response> {
    let mut conn = state.db.pool.acquire().await?;
    let products = inventory::store::catalog(&mut conn, PRODUCTS_MAX).await?;
    let settings = pricing::store::get_tax_settings(&mut conn).await?;
    drop(conn);
    let (token, set_cookie) = csrf::token(headers);
    let in_cart: i64 = Cart::of(headers).lines.iter().map(|(_, q)| q).sum();
    let tax_note = match &settings {
        Some(s) if s.prices_include_tax => "Prices include tax.",
        Some(_) => "Tax is added at checkout, for where the order ships.",
        None => "Prices have no tax added.",
    };
    let main = html! {
        h1 { "Products" }
        p.muted { (tax_note) }
        @if in_cart > 0 {
            p { a href="/shop/cart" { "Your cart has " (in_cart) " item" @if in_cart != 1 { "s" } " — check out" } }
        }
        @if products.is_empty() {
            (empty_shop(&token))
        } @else {
            ul.grid role="list" {
                @for (product, available) in &products {
                    li.card { (product_card(state, product, *available, &token)) }
                }
            }
        }
    };
    let page = layout::page(&SITE, "Products", "/shop", main);
    Ok(respond(StatusCode::OK, set_cookie, page))
}

fn product_card(
    state: &AppState,
    product: &inventory::Product,
    available: i64,
    token: &str,
) -> Markup {
    let id = format!("qty-{}", product.sku);
    html! {
        h2 { (product.name) }
        p.muted { "SKU " (product.sku) }
        p.price { (money(product.price_minor, state.currency)) }
        @if available > 0 {
            p { (available) " in stock" }
            form method="post" action="/shop/cart" {
                (layout::csrf_field(token))
                input type="hidden" name="sku" value=(product.sku);
                input type="hidden" name="add" value="1";
                div.row {
                    div {
                        label for=(id) { "Quantity" span.visually-hidden { " of " (product.name) } }
                        input #(id) type="number" name="qty" value="1" min="1" max=(QTY_MAX.min(available)) required;
                    }
                    div { button type="submit" { "Add " (product.name) " to cart" } }
                }
            }
        } @else {
            p.error { "Sold out" }
        }
    }
}

/// What a new shop shows: it sells nothing until the merchant adds products and stock — or
/// stocks the example products with one button, to try a checkout at once.
fn empty_shop(token: &str) -> Markup {
    html! {
        div.notice.warn {
            p { strong { "This shop has no products yet." } }
            p { "Add a product and its stock with the API key printed when Till first started:" }
            pre { code {
                "curl -X PUT localhost:8080/v1/products/TEE-1 -H \"Authorization: Bearer $TILL_API_KEY\" \\\n"
                "  -d '{\"name\": \"Tee\", \"price\": {\"amount\": 49900, \"currency\": \"INR\"}}'\n"
                "curl -X PUT localhost:8080/v1/inventory/TEE-1/warehouses/main -H \"Authorization: Bearer $TILL_API_KEY\" \\\n"
                "  -d '{\"on_hand\": 10}'"
            } }
            p { "Or try the shop with three example products (this works only while the catalog is empty):" }
            form method="post" action="/shop/demo-catalog" {
                (layout::csrf_field(token))
                button type="submit" { "Stock the example products" }
            }
        }
    }
}
