//! The order as the API shows it: the order's record (`orders`) with its payments and
//! refunds (`payments`), put together here, above both, so neither imports the other.

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::error::Result;
use crate::money::{Currency, TaxLine};
use crate::orders::{self, OrderRecord};
use crate::payments::{self, PaymentView, RefundView};
use crate::pricing::{Priced, PricedLine};

/// An order with every payment attempt and refund, oldest first.
#[derive(Serialize, ToSchema)]
pub struct OrderView {
    #[serde(flatten)]
    pub record: OrderRecord,
    /// The secret a browser pays this order with: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_secret: Option<String>,
    pub payments: Vec<PaymentView>,
    pub refunds: Vec<RefundView>,
}

/// The order with every payment attempt and refund, oldest first; `None` if there is none.
pub async fn order_view(conn: &mut AnyConnection, id: &str) -> Result<Option<OrderView>> {
    let Some(record) = orders::record_view(conn, id).await? else {
        return Ok(None);
    };
    Ok(Some(with_money(conn, record).await?))
}

/// The order whose record the caller has just read, with its payments and refunds.
pub async fn with_money(conn: &mut AnyConnection, record: OrderRecord) -> Result<OrderView> {
    let payments = payments::views_for_order(conn, &record.id).await?;
    let refunds = payments::refund_views_for_order(conn, &record.id).await?;
    Ok(OrderView {
        record,
        client_secret: None,
        payments,
        refunds,
    })
}

/// A cart priced as an order of it would be (`POST /v1/quotes`): the same figures, no id.
#[derive(Serialize, ToSchema)]
pub struct QuoteView {
    /// Always `quote`.
    #[schema(value_type = String, pattern = "^quote$")]
    pub object: &'static str,
    /// ISO 4217.
    pub currency: String,
    pub items: Vec<orders::Line>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub tax_lines: Vec<TaxLine>,
    pub total: i64,
    #[schema(required = true)]
    pub coupon: Option<String>,
}

impl QuoteView {
    pub fn new(priced: Priced, currency: Currency) -> QuoteView {
        QuoteView {
            object: "quote",
            currency: currency.code().to_string(),
            items: priced.lines.into_iter().map(line_of).collect(),
            subtotal: priced.subtotal,
            discount: priced.discount,
            tax: priced.tax,
            tax_lines: priced.tax_lines,
            total: priced.total,
            coupon: priced.coupon,
        }
    }
}

/// A priced line as an order keeps it.
pub fn line_of(l: PricedLine) -> orders::Line {
    orders::Line {
        sku: l.sku,
        qty: l.qty,
        unit_amount: l.unit_amount,
        amount: l.amount,
        discount: l.discount,
        hsn: l.hsn,
        tax: l.tax,
        tax_lines: l.tax_lines,
    }
}
