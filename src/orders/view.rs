//! The order's own record as the API shows it: everything but its payments and refunds,
//! which `checkout::order_view` adds (orders know nothing of payments).

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::{store, Line, NewOrder, Status};
use crate::clock::rfc3339;
use crate::error::Result;
use crate::ids::OrderId;
use crate::money::TaxLine;

/// An order without its payments and refunds.
#[derive(Clone, Serialize, ToSchema)]
pub struct OrderRecord {
    /// `ord_…`, or the client-chosen id of the seed's `/inventory/lock`.
    pub id: String,
    /// Always `order`.
    #[schema(value_type = String, pattern = "^order$")]
    pub object: &'static str,
    #[schema(value_type = String, pattern = "^(pending|confirmed|cancelled|expired|refunded|partially_refunded)$")]
    pub status: String,
    /// `payment_failed`, `customer` or `expired` where it applies, else null.
    #[schema(value_type = Option<String>, pattern = "^(payment_failed|customer|expired)$", required = true)]
    pub cancel_reason: Option<String>,
    /// ISO 4217.
    pub currency: String,
    pub items: Vec<Line>,
    /// Minor units.
    pub subtotal: i64,
    /// Minor units.
    pub discount: i64,
    /// Minor units.
    pub tax: i64,
    /// The lines' taxes summed by name and rate.
    pub tax_lines: Vec<TaxLine>,
    /// `subtotal - discount + tax` (tax exclusive) or `subtotal - discount` (prices that
    /// include their tax), minor units.
    pub total: i64,
    /// The coupon applied, upper case.
    #[schema(required = true)]
    pub coupon: Option<String>,
    #[schema(required = true)]
    pub customer: Option<Customer>,
    #[schema(required = true)]
    pub ship_to: Option<Address>,
    /// Set when the order is confirmed.
    #[schema(required = true)]
    pub invoice_number: Option<String>,
    /// RFC 3339: when the stock hold ends.
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The customer as the order was created with it (absent fields were not given).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone: Option<String>,
    /// A business buyer's GSTIN, upper case.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub gstin: Option<String>,
}

/// The shipping address as the order was created with it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct Address {
    pub country: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub line1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub line2: Option<String>,
}

/// The order's record, `None` if there is none.
pub async fn record_view(conn: &mut AnyConnection, id: &str) -> Result<Option<OrderRecord>> {
    let id = OrderId::from(id);
    let Some((o, items)) = store::record(conn, &id).await? else {
        return Ok(None);
    };
    Ok(Some(record_of(o, items)))
}

/// The record of an order its creating transaction has just written (`store::insert` of
/// `o` at `now`), as `record_view` would read it back there, without reading.
pub fn record_of_new(o: &NewOrder<'_>, now: i64) -> OrderRecord {
    let stored = store::StoredOrder {
        id: o.id.to_string(),
        status: Status::Pending,
        cancel_reason: None,
        currency: o.currency.code().to_string(),
        subtotal: o.subtotal,
        discount: o.discount,
        tax: o.tax,
        total: o.total,
        customer: o.customer.as_ref().map(|v| v.to_string()),
        ship_to: o.ship_to.as_ref().map(|v| v.to_string()),
        invoice_number: None,
        tax_lines: o.tax_lines.to_vec(),
        coupon: o.coupon.map(str::to_string),
        expires_at: o.expires_at,
        created_at: now,
        updated_at: now,
    };
    record_of(stored, o.lines.to_vec())
}

fn record_of(o: store::StoredOrder, items: Vec<Line>) -> OrderRecord {
    OrderRecord {
        id: o.id,
        object: "order",
        status: o.status.as_str().to_string(),
        cancel_reason: o.cancel_reason,
        currency: o.currency,
        items,
        subtotal: o.subtotal,
        discount: o.discount,
        tax: o.tax,
        tax_lines: o.tax_lines,
        total: o.total,
        coupon: o.coupon,
        customer: o.customer.and_then(|s| serde_json::from_str(&s).ok()),
        ship_to: o.ship_to.and_then(|s| serde_json::from_str(&s).ok()),
        invoice_number: o.invoice_number,
        expires_at: rfc3339(o.expires_at),
        created_at: rfc3339(o.created_at),
        updated_at: rfc3339(o.updated_at),
    }
}
