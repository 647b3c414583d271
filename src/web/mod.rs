//! The browser pages served by `till serve`: the storefront (`/shop`), the operations
//! console (`/admin`) and their shared shell (`layout`), form protection (`csrf`) and the
//! embedded stylesheet and scripts (`assets`).
//! Pages are rendered on the server from the same saga and stores the JSON API uses; the
//! browser holds at most one order's client secret, never the API key.

pub mod admin;
pub mod assets;
pub mod csrf;
pub mod layout;
pub mod shop;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use maud::Markup;

use crate::state::AppState;

/// Every page and asset route, merged into the application by `http::app`.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(shop::router())
        .merge(admin::router())
}

/// What every page may load: only Till's own scripts, styles and images (the QR codes are
/// inline SVG), and no framing by other sites.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// A rendered page as an HTML answer: never cached (it shows live stock and orders), never
/// framed, no referrer to other sites.
pub fn html(status: StatusCode, page: Markup) -> Response {
    let mut response = (status, page.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A `303 See Other` to `location` (after a form's POST, so a reload does not post again).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
