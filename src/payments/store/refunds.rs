//! The payments store, refunds: every statement on `refunds`. A refund is written `pending`
//! before its gateway is asked and leaves `pending` once.

use sqlx::AnyConnection;

use super::stored_currency;
use crate::db::{lease_due, Db};
use crate::error::{corrupt, Result};
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::money::Money;
use crate::payments::{Refund, RefundShare, RefundStatus};

/// Writes a refund `pending`, before its gateway is asked.
pub async fn insert_refund(conn: &mut AnyConnection, r: &Refund, now: i64) -> Result<()> {
    let tax_lines = r
        .share
        .as_ref()
        .map(|s| serde_json::to_string(&s.tax_lines).unwrap_or_else(|_| "[]".into()));
    sqlx::query(
        "INSERT INTO refunds (id, order_id, payment_id, amount, status, reason, created_at, updated_at, taxable, tax_lines)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6, $7, $8)",
    )
    .bind(r.id.as_str())
    .bind(r.order_id.as_str())
    .bind(r.payment_id.as_str())
    .bind(r.amount.minor)
    .bind(&r.reason)
    .bind(now)
    .bind(r.share.as_ref().map(|s| s.taxable))
    .bind(tax_lines)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sum of the refunds of a payment that are pending or succeeded: what is no longer refundable.
pub async fn refunded_or_pending(conn: &mut AnyConnection, payment_id: &PaymentId) -> Result<i64> {
    refund_sum(conn, payment_id, "('pending', 'succeeded')").await
}

/// Sum of the refunds of a payment the gateway confirmed.
pub async fn refunded(conn: &mut AnyConnection, payment_id: &PaymentId) -> Result<i64> {
    refund_sum(conn, payment_id, "('succeeded')").await
}

async fn refund_sum(
    conn: &mut AnyConnection,
    payment_id: &PaymentId,
    statuses: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE payment_id = $1 AND status IN {statuses}"
    ))
    .bind(payment_id.as_str())
    .fetch_one(&mut *conn)
    .await?)
}

/// A refund with when it was asked for, as the API shows it.
pub struct RefundRecord {
    pub refund: Refund,
    pub created_at: i64,
}

const REFUND_SELECT: &str =
    "SELECT r.id, r.order_id, r.payment_id, r.amount, p.currency, r.status, r.reason, r.taxable,
       r.tax_lines, r.created_at
     FROM refunds r JOIN payments p ON p.id = r.payment_id";

type RefundRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
);

fn refund_record(row: RefundRow) -> Result<RefundRecord> {
    let (
        id,
        order_id,
        payment_id,
        amount,
        currency,
        status,
        reason,
        taxable,
        tax_lines,
        created_at,
    ) = row;
    Ok(RefundRecord {
        refund: Refund {
            id: id.into(),
            order_id: order_id.into(),
            payment_id: payment_id.into(),
            amount: Money::new(amount, stored_currency(&currency)?),
            status: RefundStatus::try_from(status.as_str())?,
            reason,
            share: share(taxable, tax_lines)?,
        },
        created_at,
    })
}

pub async fn get_refund(conn: &mut AnyConnection, id: &RefundId) -> Result<Option<Refund>> {
    Ok(refund_record_by_id(conn, id).await?.map(|r| r.refund))
}

pub async fn refund_record_by_id(
    conn: &mut AnyConnection,
    id: &RefundId,
) -> Result<Option<RefundRecord>> {
    sqlx::query_as::<_, RefundRow>(&format!("{REFUND_SELECT} WHERE r.id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .map(refund_record)
        .transpose()
}

/// An order's refunds, oldest first.
pub async fn refund_records_for_order(
    conn: &mut AnyConnection,
    order_id: &OrderId,
) -> Result<Vec<RefundRecord>> {
    sqlx::query_as::<_, RefundRow>(&format!(
        "{REFUND_SELECT} WHERE r.order_id = $1 ORDER BY r.created_at, r.id"
    ))
    .bind(order_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(refund_record)
    .collect()
}

fn share(taxable: Option<i64>, tax_lines: Option<String>) -> Result<Option<RefundShare>> {
    let Some(taxable) = taxable else {
        return Ok(None);
    };
    let tax_lines = match tax_lines {
        Some(text) => {
            serde_json::from_str(&text).map_err(|_| corrupt("refunds.tax_lines", &text))?
        }
        None => vec![],
    };
    Ok(Some(RefundShare { taxable, tax_lines }))
}

/// What the payment's refunds (pending or succeeded) have given back of the order's
/// taxable value and of each tax, summed by tax name and rate.
pub async fn shares_taken(conn: &mut AnyConnection, payment_id: &PaymentId) -> Result<RefundShare> {
    let rows: Vec<(Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT taxable, tax_lines FROM refunds WHERE payment_id = $1 AND status IN ('pending', 'succeeded')",
    )
    .bind(payment_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut taken = RefundShare::default();
    for (taxable, tax_lines) in rows {
        let Some(s) = share(taxable, tax_lines)? else {
            continue;
        };
        taken.taxable += s.taxable;
        for line in s.tax_lines {
            match taken
                .tax_lines
                .iter_mut()
                .find(|t| t.name == line.name && t.rate_bps == line.rate_bps)
            {
                Some(t) => t.amount += line.amount,
                None => taken.tax_lines.push(line),
            }
        }
    }
    Ok(taken)
}

/// Moves a pending refund to what its gateway answered. Returns whether this call moved it.
pub async fn finish_refund(
    conn: &mut AnyConnection,
    id: &RefundId,
    to: RefundStatus,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE refunds SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The refunds the refund worker leases (served by the partial index `refunds_pending`).
pub const REFUNDS_DUE: &str = "status = 'pending'";

/// The refund worker's leases: pending refunds nobody touched since `untouched_since`.
pub async fn lease_due_refunds(
    db: &Db,
    untouched_since: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<RefundId>> {
    let ids = lease_due(db, "refunds", REFUNDS_DUE, untouched_since, now, limit).await?;
    Ok(ids.into_iter().map(RefundId::from).collect())
}
