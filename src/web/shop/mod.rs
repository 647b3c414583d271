//! The storefront at `/shop`: the catalog, a cart kept in a cookie, the checkout form with
//! its live quote, and the order's page, where the customer pays and follows the order to
//! its end. The shop's own routes create the order (the shop stands in for the merchant's
//! server); from then on the browser holds that order's client secret, in an `HttpOnly`
//! cookie, and every later page and form checks it exactly as the API does.

mod cart;
mod catalog;
mod checkout;
pub mod demo;
mod details;
mod figures;
mod order;
mod pay;
mod regions;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;

use super::layout::{self, Site};
use crate::error::Error;
use crate::money::Currency;
use crate::state::AppState;

/// The shop's frame.
pub const SITE: Site = Site {
    name: "Till shop",
    home: "/shop",
    nav: &[("/shop", "Products"), ("/shop/cart", "Cart")],
    script: Some("shop.js"),
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/shop", get(catalog::page))
        .route("/shop/demo-catalog", post(demo::add))
        .route("/shop/cart", get(checkout::page).post(cart::update))
        .route("/shop/cart/review", post(checkout::review))
        .route("/shop/quote", post(checkout::quote))
        .route("/shop/checkout", post(checkout::submit))
        .route("/shop/orders/{id}", get(order::page))
        .route("/shop/orders/{id}/status", get(order::status))
        .route("/shop/orders/{id}/invoice.pdf", get(order::invoice))
        .route("/shop/orders/{id}/pay", post(pay::submit))
        .route("/shop/orders/{id}/cancel", post(pay::cancel))
}

/// An amount as the pages show it: `₹1,05,988.00`.
pub fn money(minor: i64, currency: Currency) -> String {
    crate::documents::format::amount(minor, currency, true)
}

/// A page answer with the CSRF cookie set when the browser had none.
fn respond(status: StatusCode, set_cookie: Option<HeaderValue>, page: Markup) -> Response {
    let mut response = super::html(status, page);
    if let Some(cookie) = set_cookie {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}

/// An error as a page: its status, and a message a customer can act on (a server error
/// says only that something went wrong; the log has the rest).
fn error_page(err: Error) -> Response {
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(error = ?err, "shop page failed");
        let text = "Something went wrong on our side. Please try again in a moment.";
        return super::html(status, layout::message(&SITE, "Sorry", text));
    }
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        _ => "That did not work",
    };
    super::html(status, layout::message(&SITE, title, &err.to_string()))
}

/// The product names of `skus`, as (SKU, name); a SKU no longer in the catalog is left out.
async fn product_names<'a>(
    conn: &mut sqlx::AnyConnection,
    skus: impl Iterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, Error> {
    let mut names = Vec::new();
    for sku in skus {
        if let Some(product) = crate::inventory::store::get_product(conn, sku).await? {
            names.push((product.sku, product.name));
        }
    }
    Ok(names)
}
