//! The order as the API shows it: the order's record (`orders`) with its payments and
//! refunds (`payments`), put together here, above both, so neither imports the other.

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::error::Result;
use crate::orders::{self, OrderRecord};
use crate::payments::{self, PaymentView, RefundView};

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
    Ok(Some(OrderView {
        record,
        client_secret: None,
        payments: payments::views_for_order(conn, id).await?,
        refunds: payments::refund_views_for_order(conn, id).await?,
    }))
}
