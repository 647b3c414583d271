//! The saga's events: each written in the transaction of the change it reports, carrying the
//! object as `GET` shows it inside that transaction (see `notify`).

use sqlx::AnyConnection;

use super::OrderView;
use crate::error::{Error, Result};
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::notify::{self, Type};
use crate::payments;

/// `order.*`: the order with its payments and refunds.
pub async fn order(tx: &mut AnyConnection, kind: Type, id: &OrderId, now: i64) -> Result<()> {
    let view = order_now(tx, id).await?;
    notify::enqueue(tx, kind, &view, now).await?;
    Ok(())
}

/// The order as `GET` shows it inside the caller's transaction.
pub async fn order_now(tx: &mut AnyConnection, id: &OrderId) -> Result<OrderView> {
    super::order_view(tx, id.as_str())
        .await?
        .ok_or(Error::NotFound("order"))
}

/// `payment.*`: the payment attempt.
pub async fn payment(tx: &mut AnyConnection, kind: Type, id: &PaymentId, now: i64) -> Result<()> {
    let view = payments::view(tx, id.as_str())
        .await?
        .ok_or(Error::NotFound("payment"))?;
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
