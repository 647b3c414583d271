//! Events: what happened to orders, payments, refunds and invoices, in the order it
//! committed, for `GET /v1/events` and for every sink the relay feeds.
//!
//! An event is written in the same transaction as the change it reports, so it exists if and
//! only if the change happened, and it carries the object as `GET` showed it at that moment.
//! Committed events are then numbered in the order they are found (`store::sequence`), and
//! readers page by that number, which never skips or repeats an event however the writers'
//! commits interleave.

pub mod routes;
pub mod store;
pub mod webhooks;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::clock;
use crate::db::{Db, Script};
use crate::error::{corrupt, Result};
use crate::ids::{new_id, OrderId};

pub use store::Position;

/// What an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    OrderCreated,
    OrderConfirmed,
    OrderCancelled,
    OrderExpired,
    PaymentSucceeded,
    PaymentFailed,
    RefundSucceeded,
    InvoiceIssued,
    CreditNoteIssued,
}

impl Type {
    pub const ALL: [Type; 9] = [
        Type::OrderCreated,
        Type::OrderConfirmed,
        Type::OrderCancelled,
        Type::OrderExpired,
        Type::PaymentSucceeded,
        Type::PaymentFailed,
        Type::RefundSucceeded,
        Type::InvoiceIssued,
        Type::CreditNoteIssued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Type::OrderCreated => "order.created",
            Type::OrderConfirmed => "order.confirmed",
            Type::OrderCancelled => "order.cancelled",
            Type::OrderExpired => "order.expired",
            Type::PaymentSucceeded => "payment.succeeded",
            Type::PaymentFailed => "payment.failed",
            Type::RefundSucceeded => "refund.succeeded",
            Type::InvoiceIssued => "invoice.issued",
            Type::CreditNoteIssued => "credit_note.issued",
        }
    }

    pub fn parse(s: &str) -> Option<Type> {
        Type::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event, as `GET /v1/events` shows it and every sink sends it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub kind: Type,
    pub created_at: i64,
    /// The object as it was, JSON.
    pub data: Box<RawValue>,
    pub position: Position,
}

/// An event's JSON.
#[derive(Serialize, ToSchema)]
pub struct EventView<'a> {
    /// `evt_…`
    pub id: &'a str,
    /// `order.created`, `order.confirmed`, `order.cancelled`, `order.expired`,
    /// `payment.succeeded`, `payment.failed`, `refund.succeeded`, `invoice.issued`,
    /// `credit_note.issued`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// RFC 3339.
    pub created_at: String,
    /// The order, payment, refund, invoice or credit note as `GET` showed it then.
    #[schema(value_type = Object)]
    pub data: &'a RawValue,
}

impl Event {
    pub fn view(&self) -> EventView<'_> {
        EventView {
            id: &self.id,
            kind: self.kind.as_str(),
            created_at: clock::rfc3339(self.created_at),
            data: &self.data,
        }
    }

    /// The order the event is about: an order event's object is the order itself; every
    /// other object names its order (`order_id`).
    pub fn order_id(&self) -> Option<OrderId> {
        #[derive(Deserialize)]
        struct Names {
            id: Option<String>,
            order_id: Option<String>,
        }
        let names: Names = serde_json::from_str(self.data.get()).ok()?;
        match self.kind {
            Type::OrderCreated
            | Type::OrderConfirmed
            | Type::OrderCancelled
            | Type::OrderExpired => names.id,
            _ => names.order_id,
        }
        .map(OrderId::from)
    }

    /// The JSON body every sink sends: the same as `GET /v1/events` lists.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.view()).expect("an event serializes")
    }
}

impl TryFrom<store::Row> for Event {
    type Error = crate::error::Error;

    fn try_from(row: store::Row) -> Result<Event> {
        let kind = Type::parse(&row.kind).ok_or_else(|| corrupt("events.type", &row.kind))?;
        let data = RawValue::from_string(row.data).map_err(|_| corrupt("events.data", &row.id))?;
        Ok(Event {
            id: row.id,
            kind,
            created_at: row.created_at,
            data,
            position: row.position,
        })
    }
}

/// Events numbered per sequencing round: a round is one short transaction.
const SEQUENCE_BATCH: i64 = 1000;

/// Writes an event carrying `data` in the caller's transaction; returns its id.
pub async fn enqueue(
    conn: &mut AnyConnection,
    kind: Type,
    data: &impl Serialize,
    now: i64,
) -> Result<String> {
    let id = new_id("evt");
    let data = serde_json::to_string(data).map_err(|e| crate::error::Error::Internal(e.into()))?;
    store::insert(conn, &id, kind.as_str(), &data, now).await?;
    Ok(id)
}

/// Events gathered while a transaction runs and written with one statement per run of them
/// (`flush_into` the transaction's `db::Script`, `multirow::runs`) just before it commits,
/// in the order they were added: a confirmation's three events cost one round trip, a
/// flash-sale batch's sixty-four one.
/// Events not written are lost with the value, as they would be with a rollback.
#[must_use = "events are only kept once written"]
pub struct Outbox {
    now: i64,
    events: Vec<(String, Type, String)>,
}

impl Outbox {
    pub fn new(now: i64) -> Outbox {
        Outbox {
            now,
            events: Vec::with_capacity(3),
        }
    }

    /// Adds an event carrying `data`; returns its id.
    pub fn add(&mut self, kind: Type, data: &impl Serialize) -> Result<String> {
        let id = new_id("evt");
        let data =
            serde_json::to_string(data).map_err(|e| crate::error::Error::Internal(e.into()))?;
        self.events.push((id.clone(), kind, data));
        Ok(id)
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds the statements writing the events gathered so far to `script`, which the caller
    /// runs in its transaction, and forgets them.
    pub fn flush_into(&mut self, script: &mut Script) {
        let rows: Vec<(&str, &str, &str)> = self
            .events
            .iter()
            .map(|(id, kind, data)| (id.as_str(), kind.as_str(), data.as_str()))
            .collect();
        store::insert_all_into(script, &rows, self.now);
        self.events.clear();
    }
}

/// Up to `limit` events after `after`, oldest first, of `kind` when given: the events
/// committed so far are numbered first (a write transaction of its own, only when one
/// waits); the events are read on `db.reads`, which sees the numbering once it committed.
pub async fn after(db: &Db, after: Position, kind: Option<Type>, limit: i64) -> Result<Vec<Event>> {
    number_waiting(db).await?;
    let mut conn = db.reads.acquire().await?;
    store::after(&mut conn, after, kind.map(Type::as_str), limit)
        .await?
        .into_iter()
        .map(Event::try_from)
        .collect()
}

/// Whether any event follows `after`, the events committed so far numbered first (as for
/// `after`), without reading one.
pub async fn any_after(db: &Db, after: Position) -> Result<bool> {
    number_waiting(db).await?;
    store::any_after(&mut *db.reads.acquire().await?, after).await
}

/// Numbers the committed events still waiting for a position.
async fn number_waiting(db: &Db) -> Result<()> {
    // No connection is held while the write waits: on PostgreSQL `reads` is the writers' pool.
    let waiting = store::unsequenced(&mut *db.reads.acquire().await?).await?;
    if waiting {
        loop {
            let mut tx = db.write().await?;
            let numbered = store::sequence(&mut tx, db.kind, SEQUENCE_BATCH).await?;
            tx.commit().await?;
            if numbered < SEQUENCE_BATCH as u64 {
                break;
            }
        }
    }
    Ok(())
}

/// One event by id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Event>> {
    store::get(conn, id).await?.map(Event::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_and_nothing_else_does() {
        for t in Type::ALL {
            assert_eq!(Type::parse(t.as_str()), Some(t));
        }
        assert_eq!(Type::parse("order.shipped"), None);
        assert_eq!(Type::parse(""), None);
    }
}
