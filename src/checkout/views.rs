//! The order as the API shows it: the order's record (`orders`) with its payments and
//! refunds (`payments`), put together here, above both, so neither imports the other.

use serde_json::{json, Value};
use sqlx::AnyConnection;

use crate::error::Result;
use crate::orders;
use crate::payments;

/// The order with every payment attempt and refund, oldest first; `None` if there is none.
pub async fn order_view(conn: &mut AnyConnection, id: &str) -> Result<Option<Value>> {
    let Some(mut order) = orders::record_view(conn, id).await? else {
        return Ok(None);
    };
    order["payments"] = json!(payments::views_for_order(conn, id).await?);
    order["refunds"] = json!(payments::refund_views_for_order(conn, id).await?);
    Ok(Some(order))
}
