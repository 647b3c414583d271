//! Payments: payment attempts and refunds, their state machine, the gateway adapters and
//! their webhook parsing. One row in `payments` is one attempt at one gateway; it is written
//! `processing` and committed before the gateway is called, and moved on by what the gateway
//! answers, synchronously or by webhook (whose route is the saga's: `checkout::webhooks`).

pub mod gateway;
pub mod razorpay;
pub mod retry;
pub mod signature;
pub mod simulated;
pub mod store;
pub mod stripe;

mod view;
pub use view::{
    payment_view, refund_view_by_id, refund_views_for_order, stripe_js_action, view,
    views_for_order, NextAction, PaymentView, RefundView,
};

use crate::error::{corrupt, Error, Result};
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::money::{Money, TaxLine};
use gateway::Outcome;

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
    pub const ALL: [Method; 3] = [Method::Card, Method::Upi, Method::Wallet];

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
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

    /// An attempt whose money is not settled yet (`store::IN_FLIGHT_SQL` is this list).
    pub const IN_FLIGHT: [Status; 3] = [
        Status::Processing,
        Status::RequiresAction,
        Status::Authorized,
    ];

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
        Status::IN_FLIGHT.contains(&self)
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

/// A stored status, method or fate Till does not know is corrupt data, never a default.
macro_rules! stored_as {
    ($ty:ty, $column:literal) => {
        impl TryFrom<&str> for $ty {
            type Error = Error;
            fn try_from(s: &str) -> Result<$ty> {
                <$ty>::parse(s).ok_or_else(|| corrupt($column, s))
            }
        }
    };
}
stored_as!(Method, "payments.method");
stored_as!(Status, "payments.status");
stored_as!(RefundStatus, "refunds.status");

/// What the transaction that ended an order decided for an attempt still in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// No decision: the order is still open, or the attempt is the one it was paid with.
    Open,
    /// The order ended while this attempt was in flight: its money must go back (void an
    /// authorization, refund a capture); it is never kept for the order again.
    Void,
}

impl TryFrom<Option<&str>> for Fate {
    type Error = Error;
    fn try_from(s: Option<&str>) -> Result<Fate> {
        match s {
            None => Ok(Fate::Open),
            Some("void") => Ok(Fate::Void),
            Some(other) => Err(corrupt("payments.fate", other)),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub status: Status,
    pub amount: Money,
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
            key: self.id.to_string(),
            gateway_ref: self.gateway_ref.clone(),
            amount_minor: self.amount.minor,
            currency: self.amount.currency.code().to_string(),
            method: self.method,
            source: self.source.clone(),
        }
    }
}

/// A refund's life: `pending` (written before the gateway is asked), then `succeeded` or
/// `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 3] = [
        RefundStatus::Pending,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        RefundStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Clone, Debug)]
pub struct Refund {
    pub id: RefundId,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    /// In the currency of the payment it gives back.
    pub amount: Money,
    pub status: RefundStatus,
    /// `requested` by the merchant, or why Till gave a payment back on its own.
    pub reason: String,
    /// What it gives back of the order's taxable value and of each tax (a refund of a paid
    /// order's payment; none for money Till gave back on its own).
    pub share: Option<RefundShare>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefundShare {
    pub taxable: i64,
    pub tax_lines: Vec<TaxLine>,
}

impl Refund {
    /// A new refund of `minor` of the payment's money, not yet asked of its gateway.
    pub fn pending(payment: &Payment, minor: i64, reason: &str) -> Refund {
        Refund {
            id: RefundId::generate(),
            order_id: payment.order_id.clone(),
            payment_id: payment.id.clone(),
            amount: Money::new(minor, payment.amount.currency),
            status: RefundStatus::Pending,
            reason: reason.to_string(),
            share: None,
        }
    }
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
