//! HTTP routes of the tax documents: an order's invoice and a refund's credit note, as JSON
//! and as PDF (API key, or the order's client secret).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::AnyConnection;

use super::{credit_note_document, invoice_document};
use crate::documents::{self, CreditNoteDoc, InvoiceDoc};
use crate::error::{Error, Result};
use crate::http::extract::Caller;
use crate::ids::{OrderId, RefundId};
use crate::orders;
use crate::payments;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orders/{id}/invoice", get(get_invoice))
        .route("/v1/orders/{id}/invoice.pdf", get(get_invoice_pdf))
        .route("/v1/refunds/{refund_id}/credit_note", get(get_note))
        .route("/v1/refunds/{refund_id}/credit_note.pdf", get(get_note_pdf))
}

/// `GET /v1/orders/{id}/invoice`: 409 `invoice_not_issued` until the order is confirmed.
async fn get_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
) -> Result<Json<InvoiceDoc>> {
    let mut conn = order_conn(&state, &caller, &id).await?;
    invoice_document(&mut conn, &id)
        .await?
        .map(Json)
        .ok_or(INVOICE_NOT_ISSUED)
}

/// `GET /v1/orders/{id}/invoice.pdf`.
async fn get_invoice_pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<OrderId>,
) -> Result<Response> {
    let mut conn = order_conn(&state, &caller, &id).await?;
    let doc = invoice_document(&mut conn, &id)
        .await?
        .ok_or(INVOICE_NOT_ISSUED)?;
    Ok(pdf_answer(&doc.number, documents::invoice_pdf(&doc)?))
}

/// `GET /v1/refunds/{refund_id}/credit_note`: 409 `invoice_not_issued` for a refund that
/// has no credit note (not succeeded yet, or money Till gave back on its own).
async fn get_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<RefundId>,
) -> Result<Json<CreditNoteDoc>> {
    let mut conn = refund_conn(&state, &caller, &id).await?;
    credit_note_document(&mut conn, &id)
        .await?
        .map(Json)
        .ok_or(NO_CREDIT_NOTE)
}

/// `GET /v1/refunds/{refund_id}/credit_note.pdf`.
async fn get_note_pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<RefundId>,
) -> Result<Response> {
    let mut conn = refund_conn(&state, &caller, &id).await?;
    let doc = credit_note_document(&mut conn, &id)
        .await?
        .ok_or(NO_CREDIT_NOTE)?;
    Ok(pdf_answer(&doc.number, documents::credit_note_pdf(&doc)?))
}

const INVOICE_NOT_ISSUED: Error =
    Error::InvoiceNotIssued("the order has no invoice until it is confirmed");
const NO_CREDIT_NOTE: Error = Error::InvoiceNotIssued(
    "the refund has no credit note: it has not succeeded, or its order had no invoice",
);

/// The PDF, named after its document for a download (`INV-2026-27-000001.pdf`).
fn pdf_answer(number: &str, pdf: Vec<u8>) -> Response {
    let name: String = number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let disposition = format!("inline; filename=\"{name}.pdf\"");
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response()
}

/// A connection, once the caller may see the order and it exists (404 otherwise).
async fn order_conn(
    state: &AppState,
    caller: &Caller,
    id: &OrderId,
) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
    caller.check_order(id.as_str())?;
    let mut conn = state.db.pool.acquire().await?;
    exists(&mut conn, id).await?;
    Ok(conn)
}

async fn exists(conn: &mut AnyConnection, id: &OrderId) -> Result<()> {
    orders::store::head(conn, id)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("order"))
}

/// A connection, once the refund exists and the caller may see its order (404 otherwise,
/// never revealing whether another order's refund exists).
async fn refund_conn(
    state: &AppState,
    caller: &Caller,
    id: &RefundId,
) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
    let mut conn = state.db.pool.acquire().await?;
    let refund = payments::store::get_refund(&mut conn, id)
        .await?
        .ok_or(Error::NotFound("refund"))?;
    caller
        .check_order(refund.order_id.as_str())
        .map_err(|_| Error::NotFound("refund"))?;
    Ok(conn)
}
