//! The documents store: every statement on `documents`. A document is inserted once, with
//! its JSON whole, and never updated; reading one parses that JSON back (a body Till cannot
//! parse is corrupt data, never skipped).

use serde::de::DeserializeOwned;
use sqlx::AnyConnection;

use super::{CreditNoteDoc, InvoiceDoc, Kind};
use crate::db::{self, Script};
use crate::error::{corrupt, Error, Result};
use crate::ids::{OrderId, RefundId};

/// A document about to be stored.
pub struct NewDocument<'a> {
    pub kind: Kind,
    pub number: &'a str,
    pub order_id: &'a OrderId,
    pub refund_id: Option<&'a RefundId>,
    pub issued_at: i64,
    /// The document's JSON.
    pub body: String,
}

/// Stores a document unless the order already has its invoice (or the refund its credit
/// note): one insert. Returns whether this call stored it.
pub async fn insert(conn: &mut AnyConnection, doc: &NewDocument<'_>) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO documents (kind, number, order_id, refund_id, issued_at, body)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(doc.kind.as_str())
    .bind(doc.number)
    .bind(doc.order_id.as_str())
    .bind(doc.refund_id.map(RefundId::as_str))
    .bind(doc.issued_at)
    .bind(&doc.body)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// `insert`'s statement, added to `script` for the caller to run with its other writes (its
/// count of rows stored is not told apart from theirs).
pub fn insert_into(script: &mut Script, doc: &NewDocument<'_>) {
    script.push(
        "INSERT INTO documents (kind, number, order_id, refund_id, issued_at, body)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        vec![
            doc.kind.as_str().into(),
            doc.number.into(),
            doc.order_id.as_str().into(),
            doc.refund_id.map(RefundId::as_str).into(),
            doc.issued_at.into(),
            doc.body.as_str().into(),
        ],
    );
}

/// The next number of a document series (see `db::next_in_series`), in the issuing
/// transaction.
pub async fn next_number(conn: &mut AnyConnection, series: &str) -> Result<i64> {
    Ok(db::next_in_series(conn, series).await?)
}

/// The order's invoice as issued, if it has one.
pub async fn invoice(conn: &mut AnyConnection, order_id: &OrderId) -> Result<Option<InvoiceDoc>> {
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM documents WHERE kind = 'invoice' AND order_id = $1")
            .bind(order_id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    body.map(|b| parse(Kind::Invoice, &b)).transpose()
}

/// The refund's credit note as issued, if it has one.
pub async fn credit_note(
    conn: &mut AnyConnection,
    refund_id: &RefundId,
) -> Result<Option<CreditNoteDoc>> {
    let body: Option<String> = sqlx::query_scalar(
        "SELECT body FROM documents WHERE kind = 'credit_note' AND refund_id = $1",
    )
    .bind(refund_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    body.map(|b| parse(Kind::CreditNote, &b)).transpose()
}

/// Every credit note of the order, oldest first: what earlier refunds gave back.
pub async fn credit_notes_of_order(
    conn: &mut AnyConnection,
    order_id: &OrderId,
) -> Result<Vec<CreditNoteDoc>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, body FROM documents WHERE order_id = $1 AND kind = 'credit_note'
         ORDER BY issued_at, number",
    )
    .bind(order_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(kind, body)| parse(Kind::try_from(kind.as_str())?, &body))
        .collect()
}

fn parse<T: DeserializeOwned>(kind: Kind, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| -> Error {
        tracing::error!(kind = kind.as_str(), error = %e, "stored document does not parse");
        corrupt("documents.body", kind.as_str())
    })
}
