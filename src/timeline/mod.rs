//! The timeline: every step of one order's checkout, oldest first — created, stock locked,
//! coupon reserved, each payment attempt and gateway call (with its milliseconds), each
//! webhook, the confirmation and invoice, every compensation, the emails and webhooks sent.
//!
//! A step with a state change writes its entry in that change's own transaction, so a step
//! that rolled back left no entry and one that committed always has its entry. A gateway
//! call is outside any transaction; its entry is a short write of its own right after it,
//! or — for the call that creates a payment — joins the transaction applying its answer.
//! No reads, and one `INSERT` per transaction: `Steps` gathers a transaction's steps and
//! writes them together (a confirmation's five in one statement).
//!
//! Beside `db`, below the capabilities: any of them (the mail and webhook sinks of `notify`)
//! and the saga may write to it; it knows nothing of theirs.

pub mod store;

use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::db::Script;
use crate::error::{corrupt, Result};
use crate::ids::OrderId;

/// What a step was. Stored as its dotted name; a stored name Till does not know is corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OrderCreated,
    StockLocked,
    CouponReserved,
    PaymentAttempted,
    /// One call to a gateway: operation, outcome, milliseconds.
    GatewayCall,
    /// A verified webhook naming a payment of the order: applied, duplicate or ignored.
    WebhookReceived,
    PaymentRequiresAction,
    PaymentAuthorized,
    PaymentSucceeded,
    PaymentFailed,
    PaymentVoided,
    PaymentRefunded,
    OrderConfirmed,
    InvoiceIssued,
    StockCommitted,
    StockReleased,
    /// A late capture took the stock of an ended order again.
    StockRelocked,
    CouponSettled,
    CouponReleased,
    OrderCancelled,
    OrderExpired,
    RefundRequested,
    RefundSucceeded,
    RefundFailed,
    EmailSent,
    WebhookDelivered,
}

impl Kind {
    pub const ALL: [Kind; 26] = [
        Kind::OrderCreated,
        Kind::StockLocked,
        Kind::CouponReserved,
        Kind::PaymentAttempted,
        Kind::GatewayCall,
        Kind::WebhookReceived,
        Kind::PaymentRequiresAction,
        Kind::PaymentAuthorized,
        Kind::PaymentSucceeded,
        Kind::PaymentFailed,
        Kind::PaymentVoided,
        Kind::PaymentRefunded,
        Kind::OrderConfirmed,
        Kind::InvoiceIssued,
        Kind::StockCommitted,
        Kind::StockReleased,
        Kind::StockRelocked,
        Kind::CouponSettled,
        Kind::CouponReleased,
        Kind::OrderCancelled,
        Kind::OrderExpired,
        Kind::RefundRequested,
        Kind::RefundSucceeded,
        Kind::RefundFailed,
        Kind::EmailSent,
        Kind::WebhookDelivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrderCreated => "order.created",
            Kind::StockLocked => "stock.locked",
            Kind::CouponReserved => "coupon.reserved",
            Kind::PaymentAttempted => "payment.attempted",
            Kind::GatewayCall => "gateway.call",
            Kind::WebhookReceived => "webhook.received",
            Kind::PaymentRequiresAction => "payment.requires_action",
            Kind::PaymentAuthorized => "payment.authorized",
            Kind::PaymentSucceeded => "payment.succeeded",
            Kind::PaymentFailed => "payment.failed",
            Kind::PaymentVoided => "payment.voided",
            Kind::PaymentRefunded => "payment.refunded",
            Kind::OrderConfirmed => "order.confirmed",
            Kind::InvoiceIssued => "invoice.issued",
            Kind::StockCommitted => "stock.committed",
            Kind::StockReleased => "stock.released",
            Kind::StockRelocked => "stock.relocked",
            Kind::CouponSettled => "coupon.settled",
            Kind::CouponReleased => "coupon.released",
            Kind::OrderCancelled => "order.cancelled",
            Kind::OrderExpired => "order.expired",
            Kind::RefundRequested => "refund.requested",
            Kind::RefundSucceeded => "refund.succeeded",
            Kind::RefundFailed => "refund.failed",
            Kind::EmailSent => "email.sent",
            Kind::WebhookDelivered => "webhook.delivered",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl TryFrom<&str> for Kind {
    type Error = crate::error::Error;
    fn try_from(s: &str) -> Result<Kind> {
        Kind::parse(s).ok_or_else(|| corrupt("timeline.kind", s))
    }
}

/// One stored step.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Unix ms.
    pub at: i64,
    pub kind: Kind,
    pub detail: Value,
}

/// One step as `GET /v1/orders/{id}/timeline` shows it.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    /// When the step happened (RFC 3339, UTC, as every `created_at`).
    #[schema(example = "2026-11-29T05:35:49Z")]
    pub at: String,
    /// What happened, e.g. `stock.locked`, `gateway.call`, `order.confirmed`.
    #[schema(example = "stock.locked")]
    pub kind: String,
    /// The step's particulars (skus and quantities, the gateway and its milliseconds, …).
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<Entry> for EntryView {
    fn from(e: Entry) -> EntryView {
        EntryView {
            at: rfc3339(e.at),
            kind: e.kind.as_str().to_string(),
            detail: e.detail,
        }
    }
}

/// Writes one step of `order_id` in the caller's transaction: it exists if and only if that
/// commits. `detail` should be a JSON object.
pub use store::insert as record;

/// `record`'s statement, added to `script` for the caller to run with its other writes.
pub fn record_into(script: &mut Script, order_id: &OrderId, kind: Kind, detail: Value, now: i64) {
    store::insert_all_into(script, &[(order_id.clone(), kind, detail)], now);
}

/// Steps of one order gathered while its transaction runs and written with one statement
/// (`write`) just before it commits: a confirmation's five steps cost one round trip, not
/// five. Steps not written are lost with the value, as they would be with a rollback.
#[must_use = "steps are only kept once written"]
pub struct Steps {
    order_id: OrderId,
    now: i64,
    steps: Vec<(OrderId, Kind, Value)>,
}

impl Steps {
    pub fn new(order_id: &OrderId, now: i64) -> Steps {
        Steps {
            order_id: order_id.clone(),
            now,
            steps: Vec::with_capacity(6),
        }
    }

    /// A step of the order these steps were made for.
    pub fn add(&mut self, kind: Kind, detail: Value) {
        self.steps.push((self.order_id.clone(), kind, detail));
    }

    /// A step of another order, written with the rest (a batch's orders).
    pub fn add_for(&mut self, order_id: &OrderId, kind: Kind, detail: Value) {
        self.steps.push((order_id.clone(), kind, detail));
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Writes the steps gathered so far in the caller's transaction, and forgets them.
    pub async fn flush(&mut self, conn: &mut AnyConnection) -> Result<()> {
        store::insert_all(conn, &self.steps, self.now).await?;
        self.steps.clear();
        Ok(())
    }

    /// Adds the statements writing the steps gathered so far to `script`, which the caller
    /// runs in its transaction, and forgets them.
    pub fn flush_into(&mut self, script: &mut Script) {
        store::insert_all_into(script, &self.steps, self.now);
        self.steps.clear();
    }

    /// Writes the steps in the caller's transaction.
    pub async fn write(mut self, conn: &mut AnyConnection) -> Result<()> {
        self.flush(conn).await
    }
}

/// For the mail sink: a message about the order went out (`event` is the event it reports,
/// e.g. `order.confirmed`).
pub async fn email_sent(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    event: &str,
    to: &str,
    now: i64,
) -> Result<()> {
    let detail = serde_json::json!({"event": event, "to": to});
    record(conn, order_id, Kind::EmailSent, &detail, now).await
}

/// For the merchant webhook sender: an event about the order was delivered to an endpoint
/// (answered 2xx with `status_code`).
pub async fn webhook_delivered(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    event_id: &str,
    endpoint_id: &str,
    status_code: u16,
    now: i64,
) -> Result<()> {
    let detail = serde_json::json!({
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status_code": status_code,
    });
    record(conn, order_id, Kind::WebhookDelivered, &detail, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself_and_an_unknown_one_is_corrupt() {
        for kind in Kind::ALL {
            assert_eq!(Kind::try_from(kind.as_str()).unwrap(), kind);
        }
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len(), "two kinds share a name");
        assert!(Kind::try_from("order.teleported").is_err());
        assert!(Kind::try_from("").is_err());
    }
}
