//! The `Gateway` trait every payment provider implements (the simulator today; Stripe and
//! Razorpay next), and the wire-neutral types it speaks. Gateways are stateless from Till's
//! side: they never touch Till's tables; the saga persists what they answer.

use std::future::Future;
use std::pin::Pin;

use axum::http::HeaderMap;

use super::Method;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Pages a reconciliation listing reads at most from one gateway (100 payments a page): a
/// bound on a runaway listing, far above what one shop's payments since the last pass are.
pub const LIST_PAGES_MAX: usize = 10_000;

/// One attempt to take an order's money. `key` is the payment attempt's id, sent as the
/// gateway idempotency key, so asking again after a crash or timeout never charges twice.
#[derive(Clone, Debug)]
pub struct Charge {
    pub key: String,
    /// The gateway's own id for this payment, once it has answered with one.
    pub gateway_ref: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub method: Method,
    pub source: String,
}

/// What the gateway says about a payment. Only `Succeeded` and `Failed` are final answers
/// about the money; anything a gateway reports that Till does not know maps to `Processing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Processing,
    RequiresAction {
        redirect_url: String,
        /// What Stripe.js needs to take the customer through the step itself
        /// (`next_action.type = use_stripe_sdk`): the PaymentIntent's client secret.
        client_secret: Option<String>,
    },
    /// The money is held for Till (a card authorization); `capture` takes it.
    Authorized,
    Succeeded,
    Failed {
        code: String,
    },
    Canceled,
    /// The gateway cannot void (Razorpay): the authorization stays on its books and lapses
    /// because Till will never capture it. Till records the attempt `canceled`.
    Released,
}

#[derive(Clone, Debug)]
pub struct GatewayPayment {
    pub gateway_ref: String,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused the request itself (4xx): asking again will not help.
    #[error("gateway rejected the request: {0}")]
    Rejected(String),
    /// No answer, or a 5xx: the outcome is unknown and the same call may be repeated.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
}

/// One payment as the gateway's own books show it, for reconciliation.
#[derive(Clone, Debug)]
pub struct GatewayRecord {
    pub gateway_ref: String,
    /// Till's payment id, when the payment carries it (metadata, notes, idempotency key).
    pub key: Option<String>,
    pub outcome: Outcome,
    pub amount_minor: i64,
    pub refunded_minor: i64,
    pub currency: String,
    /// When the gateway created it (unix seconds), so a listing can stop at a point in time.
    pub created_secs: i64,
}

/// A verified, parsed webhook.
#[derive(Clone, Debug)]
pub struct WebhookEvent {
    /// What duplicates of this event share: the gateway's event id, or for a gateway whose
    /// event id is not signed (Razorpay) a hash of the signed body.
    pub event_id: String,
    /// Till's payment id, which is the idempotency key the gateway was given.
    pub payment_key: String,
    pub payment: GatewayPayment,
    /// The money the event is about; it must be the attempt's, or the event changes nothing.
    pub amount_minor: i64,
    /// Upper case ISO 4217, as Till stores it.
    pub currency: String,
}

pub trait Gateway: Send + Sync {
    fn name(&self) -> &'static str;

    /// Refuses a source this gateway cannot charge before any state is written.
    fn check_source(&self, method: Method, source: &str) -> Result<(), String>;

    /// Creates (or, for a key already seen, returns) the gateway's payment.
    fn create<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>>;

    /// A cheap authenticated call: does the gateway answer, and accept Till's keys?
    fn probe(&self) -> BoxFuture<'_, Result<(), GatewayError>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the gateway can void an authorization. One that cannot (Razorpay) releases it
    /// by never capturing it, and the authorization lapses on its own.
    fn voids(&self) -> bool {
        true
    }

    /// Takes the money of an authorized payment; returns its state afterwards.
    fn capture<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>>;

    /// Voids a payment that has not completed (or an authorization); returns its state
    /// afterwards, which may be `Succeeded` if it completed first.
    fn cancel<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>>;

    /// Refunds part or all of a succeeded payment; `refund_key` makes it idempotent.
    fn refund<'a>(
        &'a self,
        charge: &'a Charge,
        refund_key: &'a str,
        amount_minor: i64,
    ) -> BoxFuture<'a, Result<(), GatewayError>>;

    /// The gateway's payments created at or after `since_secs` (every one for `None`), most
    /// recent first, for reconciliation.
    fn list<'a>(
        &'a self,
        since_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<GatewayRecord>, GatewayError>>;

    /// This attempt's payment as the gateway's books show it; `None` when it has none.
    fn fetch<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<Option<GatewayRecord>, GatewayError>>;

    /// Checks the signature over the raw body and parses the event; `None` for a genuine
    /// event that says nothing about a Till payment.
    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Option<WebhookEvent>, String>;
}
