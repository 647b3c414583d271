//! The operations console at `/admin`: server-rendered pages over the same stores and saga
//! functions the JSON API uses, for a signed-in merchant (`session.rs`: the API key once,
//! then an `HttpOnly`, `SameSite=Strict` session cookie; a CSRF token on every form).
//!
//! - `orders.rs` — the orders list (search and filters), an order's page (items, taxes,
//!   payments, refunds, documents, timeline), refund and cancel.
//! - `stock.rs` — products, stock per warehouse with its ledger, on-hand edits.
//! - `dashboard.rs` — the live figures, drawn as inline SVG charts (`chart.rs`).
//! - `setup.rs` — coupons, tax settings, webhook endpoints and their deliveries, events.
//! - `store.rs` — the sessions (hashed tokens, expiry).

mod chart;
mod dashboard;
mod orders;
mod page;
mod refund;
mod session;
mod setup;
mod stock;
pub mod store;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::state::AppState;

pub use session::SESSION_TTL_MS;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/admin/sign-out", post(session::sign_out))
        .route("/admin", get(dashboard::page))
        .route("/admin/orders", get(orders::list))
        .route("/admin/orders/{id}", get(orders::show))
        .route("/admin/orders/{id}/refund", post(refund::refund))
        .route("/admin/orders/{id}/cancel", post(orders::cancel))
        .route("/admin/orders/{id}/invoice.pdf", get(orders::invoice_pdf))
        .route(
            "/admin/refunds/{id}/credit_note.pdf",
            get(orders::credit_note_pdf),
        )
        .route("/admin/inventory", get(stock::list))
        .route("/admin/inventory/{sku}", get(stock::show))
        .route("/admin/inventory/{sku}/stock", post(stock::set_stock))
        .route("/admin/coupons", get(setup::coupons))
        .route("/admin/tax", get(setup::tax))
        .route("/admin/webhooks", get(setup::webhooks))
        .route("/admin/webhooks/{id}", get(setup::deliveries))
        .route("/admin/events", get(setup::events))
        .route("/admin/events/{id}/redeliver", post(setup::redeliver))
}

/// A URL-encoded form body, parsed into `T`; anything else is a 400 page.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Form<T>, Response> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        serde_urlencoded::from_bytes(&bytes).map(Form).map_err(|e| {
            page::message(
                StatusCode::BAD_REQUEST,
                "Form not understood",
                &format!("The form could not be read: {e}."),
            )
        })
    }
}
