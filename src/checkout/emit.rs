//! The saga's events: each written in the transaction of the change it reports, carrying the
//! object as `GET` shows it inside that transaction (see `notify`). A payment's move and the
//! order's confirmation gather theirs in `trail::Gathered` instead, written in one statement.

use sqlx::AnyConnection;

use crate::error::{Error, Result};
use crate::ids::{OrderId, RefundId};
use crate::notify::{self, Type};
use crate::payments;

/// `order.*`: the order with its payments and refunds.
pub async fn order(tx: &mut AnyConnection, kind: Type, id: &OrderId, now: i64) -> Result<()> {
    let view = super::order_view(tx, id.as_str())
        .await?
        .ok_or(Error::NotFound("order"))?;
    notify::enqueue(tx, kind, &view, now).await?;
    Ok(())
}

/// `refund.succeeded`: the refund.
pub async fn refund(tx: &mut AnyConnection, id: &RefundId, now: i64) -> Result<()> {
    let view = payments::refund_view_by_id(tx, id.as_str())
        .await?
        .ok_or(Error::NotFound("refund"))?;
    notify::enqueue(tx, Type::RefundSucceeded, &view, now).await?;
    Ok(())
}
