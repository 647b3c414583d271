//! Payments: payment attempts and refunds, their state machine, the gateway adapters and
//! their webhook parsing. One row in `payments` is one attempt at one gateway; it is written
//! `processing` and committed before the gateway is called, and moved on by what the gateway
//! answers, synchronously or by webhook (whose route is the saga's: `checkout::webhooks`).

pub mod gateway;
pub mod razorpay;
pub mod retry;
pub mod signature;
pub mod sim;
pub mod stripe;

use sqlx::{AnyConnection, Row};

use crate::error::{corrupt, Result};
use gateway::{GatewayPayment, Outcome};

mod view;
pub use view::{
    refund_view_by_id, refund_views_for_order, stripe_js_action, view, views_for_order, NextAction,
    PaymentView, RefundView,
};

/// `name@handle`, as UPI virtual payment addresses (VPAs) are written.
pub fn valid_vpa(vpa: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    vpa.len() <= 100
        && vpa
            .split_once('@')
            .is_some_and(|(name, handle)| ok(name) && ok(handle))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Card,
    Upi,
    Wallet,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "card" => Some(Method::Card),
            "upi" => Some(Method::Upi),
            "wallet" => Some(Method::Wallet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Card => "card",
            Method::Upi => "upi",
            Method::Wallet => "wallet",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Processing,
    RequiresAction,
    Authorized,
    Succeeded,
    Failed,
    Canceled,
    Refunded,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Processing,
        Status::RequiresAction,
        Status::Authorized,
        Status::Succeeded,
        Status::Failed,
        Status::Canceled,
        Status::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Processing => "processing",
            Status::RequiresAction => "requires_action",
            Status::Authorized => "authorized",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
            Status::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Forward-only moves: an answer that would go backwards (a late `processing` webhook
    /// after `succeeded`) is ignored. Failed, canceled and refunded are final.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (
                Processing,
                RequiresAction | Authorized | Succeeded | Failed | Canceled
            ) | (
                RequiresAction,
                Processing | Authorized | Succeeded | Failed | Canceled
            ) | (Authorized, Succeeded | Failed | Canceled)
                | (Succeeded, Refunded)
        )
    }

    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Status::Processing | Status::RequiresAction | Status::Authorized
        )
    }

    pub fn from_outcome(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Processing => Status::Processing,
            Outcome::RequiresAction { .. } => Status::RequiresAction,
            Outcome::Authorized => Status::Authorized,
            Outcome::Succeeded => Status::Succeeded,
            Outcome::Failed { .. } => Status::Failed,
            // Released: Till will never capture it, which is all a void can mean there.
            Outcome::Canceled | Outcome::Released => Status::Canceled,
        }
    }
}

/// The statuses of an attempt whose money is not settled yet, as SQL, for the queries that
/// look for them (the same set as `Status::in_flight`).
pub const IN_FLIGHT_SQL: &str = "('processing', 'requires_action', 'authorized')";

/// What the transaction that ended an order decided for an attempt still in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// No decision: the order is still open, or the attempt is the one it was paid with.
    Open,
    /// The order ended while this attempt was in flight: its money must go back (void an
    /// authorization, refund a capture); it is never kept for the order again.
    Void,
}

impl Fate {
    fn parse(s: Option<&str>) -> Result<Fate> {
        match s {
            None => Ok(Fate::Open),
            Some("void") => Ok(Fate::Void),
            Some(other) => Err(corrupt("payments.fate", other)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Payment {
    pub id: String,
    pub order_id: String,
    pub status: Status,
    pub amount_minor: i64,
    pub currency: String,
    pub method: Method,
    pub source: String,
    pub gateway: String,
    /// The gateway's id for the payment, once it has answered.
    pub gateway_ref: Option<String>,
    pub fate: Fate,
}

impl Payment {
    /// The gateway call for this attempt; its id is the gateway idempotency key, so the same
    /// call can be repeated after a crash or a lost answer without charging twice.
    pub fn charge(&self) -> gateway::Charge {
        gateway::Charge {
            key: self.id.clone(),
            gateway_ref: self.gateway_ref.clone(),
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            method: self.method,
            source: self.source.clone(),
        }
    }
}

const PAYMENT_COLUMNS: &str =
    "id, order_id, status, amount, currency, method, source, gateway, gateway_ref, fate";

fn payment_from_row(r: &sqlx::any::AnyRow) -> Result<Payment> {
    let status: String = r.get("status");
    let method: String = r.get("method");
    Ok(Payment {
        id: r.get("id"),
        order_id: r.get("order_id"),
        status: Status::parse(&status).ok_or_else(|| corrupt("payments.status", &status))?,
        amount_minor: r.get("amount"),
        currency: r.get("currency"),
        method: Method::parse(&method).ok_or_else(|| corrupt("payments.method", &method))?,
        source: r.get("source"),
        gateway: r.get("gateway"),
        gateway_ref: r
            .get::<Option<String>, _>("gateway_ref")
            .filter(|r| !r.is_empty()),
        fate: Fate::parse(r.get::<Option<String>, _>("fate").as_deref())?,
    })
}

/// Records a new attempt as `processing`. A unique violation means another attempt on the
/// same order is already in flight.
pub async fn insert_attempt(
    conn: &mut AnyConnection,
    p: &Payment,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (id, order_id, status, amount, currency, method, source, gateway, created_at, updated_at)
         VALUES ($1, $2, 'processing', $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&p.id)
    .bind(&p.order_id)
    .bind(p.amount_minor)
    .bind(&p.currency)
    .bind(p.method.as_str())
    .bind(&p.source)
    .bind(&p.gateway)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Payment>> {
    let row = sqlx::query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(payment_from_row).transpose()
}

/// Payments changed at or after `since_ms`, and Razorpay payments Till released (voided by
/// not capturing) created at or after `released_since_ms`, for reconciliation.
pub async fn changed_since(
    conn: &mut AnyConnection,
    since_ms: i64,
    released_since_ms: i64,
) -> Result<Vec<Payment>> {
    let rows = sqlx::query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments
         WHERE updated_at >= $1 OR (gateway = 'razorpay' AND status = 'canceled' AND created_at >= $2)
         ORDER BY updated_at, id"
    ))
    .bind(since_ms)
    .bind(released_since_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(payment_from_row).collect()
}

pub async fn for_order(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<Payment>> {
    let rows = sqlx::query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 ORDER BY created_at, id"
    ))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(payment_from_row).collect()
}

/// Compare-and-set of an attempt's status with what the gateway said. Returns whether this
/// call made the move. The gateway's id is set the first time and never replaced: an answer
/// naming another gateway payment does not re-point the attempt.
pub async fn record_outcome(
    conn: &mut AnyConnection,
    id: &str,
    from: Status,
    gp: &GatewayPayment,
    now: i64,
) -> Result<bool> {
    let to = Status::from_outcome(&gp.outcome);
    assert!(
        from == to || from.can_become(to),
        "illegal payment transition {from:?} -> {to:?}"
    );
    // A Stripe.js client secret is never stored: Stripe asks that it go to the customer
    // only, so it is handed over once, in the answer to the payment request.
    let (failure_code, redirect_url) = match &gp.outcome {
        Outcome::Failed { code } => (Some(code.as_str()), None),
        Outcome::RequiresAction { redirect_url, .. } => (None, Some(redirect_url.as_str())),
        _ => (None, None),
    };
    let n = sqlx::query(
        "UPDATE payments SET status = $1, gateway_ref = COALESCE(gateway_ref, NULLIF($2, '')), failure_code = $3, redirect_url = $4, updated_at = $5
         WHERE id = $6 AND status = $7",
    )
    .bind(to.as_str())
    .bind(&gp.gateway_ref)
    .bind(failure_code)
    .bind(redirect_url)
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    from: Status,
    to: Status,
    now: i64,
) -> Result<bool> {
    assert!(
        from.can_become(to),
        "illegal payment transition {from:?} -> {to:?}"
    );
    let n = sqlx::query(
        "UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// In the transaction that ends an order: every attempt still in flight is to be voided.
/// Returns their ids, for the caller to carry the decision out once it has committed.
pub async fn decide_void_in_flight(
    conn: &mut AnyConnection,
    order_id: &str,
    now: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        "UPDATE payments SET fate = 'void', updated_at = $1
         WHERE order_id = $2 AND status IN {IN_FLIGHT_SQL} RETURNING id"
    ))
    .bind(now)
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Keeps what a gateway said that Till will not apply (the payment an order was paid with
/// reported canceled or failed) for reconciliation and for a person to look at.
pub async fn record_contradiction(
    conn: &mut AnyConnection,
    id: &str,
    what: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE payments SET contradiction = $1, updated_at = $2 WHERE id = $3")
        .bind(what)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks an attempt as looked at, so the recovery worker waits before asking about it
/// again, and keeps the gateway's id for it if it had none yet.
pub async fn touch(conn: &mut AnyConnection, id: &str, gateway_ref: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET updated_at = $1,
           gateway_ref = CASE WHEN gateway_ref IS NULL OR gateway_ref = '' THEN $2 ELSE gateway_ref END
         WHERE id = $3",
    )
    .bind(now)
    .bind(gateway_ref)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a gateway's event was applied already (the dedupe of its webhooks).
pub async fn webhook_seen(conn: &mut AnyConnection, gateway: &str, event_id: &str) -> Result<bool> {
    let seen: Option<String> = sqlx::query_scalar(
        "SELECT event_id FROM webhook_events WHERE gateway = $1 AND event_id = $2",
    )
    .bind(gateway)
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(seen.is_some())
}

/// Remembers an applied event so a repeat of it changes nothing.
pub async fn record_webhook(
    conn: &mut AnyConnection,
    gateway: &str,
    event_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO webhook_events (gateway, event_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(gateway)
        .bind(event_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A refund's life: `pending` (written before the gateway is asked), then `succeeded` or
/// `failed`.
pub async fn insert_refund(
    conn: &mut AnyConnection,
    id: &str,
    order_id: &str,
    payment_id: &str,
    amount_minor: i64,
    reason: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refunds (id, order_id, payment_id, amount, status, reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6)",
    )
    .bind(id)
    .bind(order_id)
    .bind(payment_id)
    .bind(amount_minor)
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sum of the refunds of a payment that are pending or succeeded: what is no longer refundable.
pub async fn refunded_or_pending(conn: &mut AnyConnection, payment_id: &str) -> Result<i64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE payment_id = $1 AND status IN ('pending', 'succeeded')",
    )
    .bind(payment_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

pub async fn refunded(conn: &mut AnyConnection, payment_id: &str) -> Result<i64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE payment_id = $1 AND status = 'succeeded'",
    )
    .bind(payment_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

pub struct Refund {
    pub id: String,
    pub order_id: String,
    pub payment_id: String,
    pub amount_minor: i64,
    pub status: String,
    /// `requested` by the merchant, or why Till gave a payment back on its own.
    pub reason: String,
}

pub async fn get_refund(conn: &mut AnyConnection, id: &str) -> Result<Option<Refund>> {
    let row = sqlx::query(
        "SELECT id, order_id, payment_id, amount, status, reason FROM refunds WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Refund {
        id: r.get("id"),
        order_id: r.get("order_id"),
        payment_id: r.get("payment_id"),
        amount_minor: r.get("amount"),
        status: r.get("status"),
        reason: r.get("reason"),
    }))
}

pub async fn finish_refund(conn: &mut AnyConnection, id: &str, to: &str, now: i64) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE refunds SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    #[test]
    fn final_states_are_final() {
        for to in Status::ALL {
            assert!(!Failed.can_become(to));
            assert!(!Canceled.can_become(to));
            assert!(!Refunded.can_become(to));
        }
        assert!(!Succeeded.can_become(Processing));
        assert!(!Succeeded.can_become(Failed));
    }

    /// How far along a payment is; legal moves never go back.
    fn rank(s: Status) -> u8 {
        match s {
            Processing | RequiresAction => 0,
            Authorized => 1,
            Succeeded | Failed | Canceled => 2,
            Refunded => 3,
        }
    }

    proptest::proptest! {
        #[test]
        fn payments_only_move_forward(events in proptest::collection::vec(0usize..7, 0..40)) {
            let mut state = Processing;
            for e in events {
                let next = Status::ALL[e];
                if state.can_become(next) {
                    proptest::prop_assert!(rank(next) >= rank(state), "{:?} -> {:?}", state, next);
                    proptest::prop_assert!(!matches!(state, Failed | Canceled | Refunded));
                    state = next;
                }
            }
        }
    }

    /// Every move, legal or not, against the table of the rules.
    #[test]
    fn every_move_is_as_the_rules_say() {
        let legal = [
            (Processing, RequiresAction),
            (Processing, Authorized),
            (Processing, Succeeded),
            (Processing, Failed),
            (Processing, Canceled),
            (RequiresAction, Processing),
            (RequiresAction, Authorized),
            (RequiresAction, Succeeded),
            (RequiresAction, Failed),
            (RequiresAction, Canceled),
            (Authorized, Succeeded),
            (Authorized, Failed),
            (Authorized, Canceled),
            (Succeeded, Refunded),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn forward_moves() {
        assert!(Processing.can_become(Succeeded));
        assert!(RequiresAction.can_become(Succeeded));
        assert!(Succeeded.can_become(Refunded));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
