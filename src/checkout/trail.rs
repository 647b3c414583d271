//! The saga's side of the timeline: gateway calls timed and written down, and the names of
//! payment moves. Every other step writes its entry in the transaction of the change it
//! reports (`timeline::record`, or gathered in `timeline::Steps` and written in one statement).

use std::future::Future;
use std::time::Instant;

use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::pay::timed;
use crate::db::Script;
use crate::error::Result;
use crate::ids::OrderId;
use crate::notify::Outbox;
use crate::payments::gateway::{GatewayError, GatewayPayment, GatewayRecord, Outcome};
use crate::payments::{Payment, Refund, Status};
use crate::state::AppState;
use crate::timeline::{self, Kind, Steps};

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
    let (answer, step) = gateway_call_step(state, payment, op, call).await;
    write_call(state, &payment.order_id, &step).await;
    answer
}

/// `gateway_call` that hands back the call's step (its detail) instead of writing it, for
/// the transaction that applies the answer to write with its own.
pub async fn gateway_call_step<T: Answer>(
    state: &AppState,
    payment: &Payment,
    op: Op,
    call: impl Future<Output = T>,
) -> (T, Value) {
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
    (answer, detail)
}

/// Writes a gateway call's step on its own. A timeline that cannot be written is logged.
pub async fn write_call(state: &AppState, order_id: &OrderId, detail: &Value) {
    let written = async {
        let mut conn = state.db.pool.acquire().await?;
        timeline::record(
            &mut conn,
            order_id,
            Kind::GatewayCall,
            detail,
            state.now_ms(),
        )
        .await
    };
    if let Err(err) = written.await {
        tracing::warn!(%order_id, error = %err, "gateway call not written to the timeline");
    }
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

/// What one transaction of the saga writes beside its changes — the order's timeline steps
/// and the events — gathered as it runs and written just before it commits: two statements
/// however many there are. `flush` writes what is gathered so far, where a step written
/// directly must come after it.
pub struct Gathered {
    /// Other writes that read nothing back (a confirmation's paid-by and invoice number,
    /// its invoice document), written first.
    pub writes: Script,
    pub steps: Steps,
    pub events: Outbox,
}

impl Gathered {
    pub fn new(order_id: &OrderId, now: i64) -> Gathered {
        Gathered {
            writes: Script::new(),
            steps: Steps::new(order_id, now),
            events: Outbox::new(now),
        }
    }

    /// Writes everything gathered so far in the caller's transaction, as one script.
    pub async fn flush(&mut self, tx: &mut AnyConnection) -> Result<()> {
        self.take().run(tx).await?;
        Ok(())
    }

    /// Everything gathered so far as one script, for the caller to add its own last writes
    /// to and run; forgets it.
    pub fn take(&mut self) -> Script {
        let mut script = std::mem::take(&mut self.writes);
        self.steps.flush_into(&mut script);
        self.events.flush_into(&mut script);
        script
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.steps.is_empty() && self.events.is_empty()
    }
}

/// How an order settled: its own step (confirmed, cancelled, expired) with its detail, the
/// step of its coupon's use if it had one, and its stock's with how many locks moved.
pub struct Settled {
    pub order: (Kind, Value),
    pub coupon: Option<Kind>,
    pub stock: (Kind, usize),
}

/// Adds how an order settled to the steps of the transaction that settled it.
pub fn settled(steps: &mut Steps, settled: Settled) {
    let (kind, detail) = settled.order;
    steps.add(kind, detail);
    if let Some(kind) = settled.coupon {
        steps.add(kind, json!({}));
    }
    let (kind, locks) = settled.stock;
    steps.add(kind, json!({"locks": locks}));
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
