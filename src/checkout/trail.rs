//! The saga's side of the timeline: gateway calls timed and written down, and the names of
//! payment moves. Every other step writes its entry where it happens, in its own
//! transaction (`timeline::record`).

use std::future::Future;
use std::time::Instant;

use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::pay::timed;
use crate::error::Result;
use crate::ids::OrderId;
use crate::payments::gateway::{GatewayError, GatewayPayment, GatewayRecord, Outcome};
use crate::payments::{Payment, Refund, Status};
use crate::state::AppState;
use crate::timeline::{self, Kind};

/// Which gateway operation a call was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Capture,
    Void,
    Refund,
    /// Reading the payment as the gateway's books show it.
    Status,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Capture => "capture",
            Op::Void => "void",
            Op::Refund => "refund",
            Op::Status => "status",
        }
    }
}

/// What a gateway's answer was, for the timeline: `outcome`, and `error` when it failed.
pub trait Answer {
    fn describe(&self) -> Value;
}

impl Answer for std::result::Result<GatewayPayment, GatewayError> {
    fn describe(&self) -> Value {
        match self {
            Ok(gp) => outcome(&gp.outcome),
            Err(err) => failure(err),
        }
    }
}

impl Answer for std::result::Result<(), GatewayError> {
    fn describe(&self) -> Value {
        match self {
            Ok(()) => json!({"outcome": "ok"}),
            Err(err) => failure(err),
        }
    }
}

impl Answer for std::result::Result<Option<GatewayRecord>, GatewayError> {
    fn describe(&self) -> Value {
        match self {
            Ok(Some(record)) => outcome(&record.outcome),
            Ok(None) => json!({"outcome": "not_found"}),
            Err(err) => failure(err),
        }
    }
}

fn outcome(outcome: &Outcome) -> Value {
    match failure_code(outcome) {
        Some(code) => json!({"outcome": outcome_name(outcome), "code": code}),
        None => json!({"outcome": outcome_name(outcome)}),
    }
}

/// What a gateway said about a payment, in one word.
pub fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Processing => "processing",
        Outcome::RequiresAction { .. } => "requires_action",
        Outcome::Authorized => "authorized",
        Outcome::Succeeded => "succeeded",
        Outcome::Failed { .. } => "failed",
        Outcome::Canceled => "canceled",
        Outcome::Released => "released",
    }
}

fn failure(err: &GatewayError) -> Value {
    let kind = match err {
        GatewayError::Rejected(_) => "rejected",
        GatewayError::Unavailable(_) => "unavailable",
    };
    json!({"outcome": kind, "error": err.to_string()})
}

/// Calls the gateway about `payment` (timed into the metrics too) and writes the call to the
/// order's timeline right after: operation, gateway, outcome, whole milliseconds. A timeline
/// that cannot be written is logged; the call's answer is what the saga goes on with.
pub async fn gateway_call<T: Answer>(
    state: &AppState,
    payment: &Payment,
    op: Op,
    call: impl Future<Output = T>,
) -> T {
    let started = Instant::now();
    let answer = timed(state, call).await;
    let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut detail = json!({
        "operation": op.as_str(),
        "gateway": payment.gateway,
        "payment_id": payment.id,
        "ms": ms,
    });
    if let (Some(detail), Value::Object(more)) = (detail.as_object_mut(), answer.describe()) {
        detail.extend(more);
    }
    if let Err(err) = write_call(state, payment, &detail).await {
        tracing::warn!(payment_id = %payment.id, error = %err, "gateway call not written to the timeline");
    }
    answer
}

async fn write_call(state: &AppState, payment: &Payment, detail: &Value) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    timeline::record(
        &mut conn,
        &payment.order_id,
        Kind::GatewayCall,
        detail,
        state.now_ms(),
    )
    .await
}

/// A refund's step (`refund.requested`, `.succeeded`, `.failed`) in the caller's
/// transaction, the one that made the refund so.
pub async fn refund_step(
    tx: &mut AnyConnection,
    refund: &Refund,
    kind: Kind,
    now: i64,
) -> Result<()> {
    let detail = json!({
        "refund_id": refund.id,
        "payment_id": refund.payment_id,
        "amount": refund.amount.minor,
        "reason": refund.reason,
    });
    timeline::record(tx, &refund.order_id, kind, &detail, now).await
}

/// How an order settled: its own step (confirmed, cancelled, expired) with its detail, the
/// step of its coupon's use if it had one, and its stock's with how many locks moved.
pub struct Settled {
    pub order: (Kind, Value),
    pub coupon: Option<Kind>,
    pub stock: (Kind, usize),
}

/// Writes how an order settled, in the transaction that settled it.
pub async fn settled(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    settled: Settled,
    now: i64,
) -> Result<()> {
    let (kind, detail) = settled.order;
    timeline::record(tx, order_id, kind, &detail, now).await?;
    if let Some(kind) = settled.coupon {
        timeline::record(tx, order_id, kind, &json!({}), now).await?;
    }
    let (kind, locks) = settled.stock;
    timeline::record(tx, order_id, kind, &json!({"locks": locks}), now).await
}

/// The gateway's code for a failed payment, if it failed.
pub fn failure_code(outcome: &Outcome) -> Option<&str> {
    if let Outcome::Failed { code } = outcome {
        Some(code)
    } else {
        None
    }
}

/// The timeline's name for a payment's move to `to`; none for `processing` (where every
/// attempt starts).
pub fn payment_kind(to: Status) -> Option<Kind> {
    match to {
        Status::Processing => None,
        Status::RequiresAction => Some(Kind::PaymentRequiresAction),
        Status::Authorized => Some(Kind::PaymentAuthorized),
        Status::Succeeded => Some(Kind::PaymentSucceeded),
        Status::Failed => Some(Kind::PaymentFailed),
        Status::Canceled => Some(Kind::PaymentVoided),
        Status::Refunded => Some(Kind::PaymentRefunded),
    }
}
