//! Payments and refunds as the API shows them.

use serde::Serialize;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use super::store::{self, PaymentRecord, RefundRecord};
use super::Status;
use crate::clock::rfc3339;
use crate::error::Result;
use crate::ids::{OrderId, PaymentId, RefundId};

/// One payment attempt.
#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    /// `pay_…`
    pub id: String,
    /// Always `payment`.
    #[schema(value_type = String, pattern = "^payment$")]
    pub object: &'static str,
    pub order_id: String,
    #[schema(
        pattern = "^(processing|requires_action|authorized|succeeded|failed|canceled|refunded)$"
    )]
    pub status: String,
    /// The order's total when the attempt was made, minor units.
    pub amount: i64,
    pub currency: String,
    /// `card`, `upi` or `wallet`.
    pub method: String,
    /// The gateway that takes it: `sim`, `stripe` or `razorpay`.
    pub gateway: String,
    /// Why a failed payment failed, e.g. `card_declined`.
    #[schema(required = true)]
    pub failure_code: Option<String>,
    /// What the customer must do next while the payment `requires_action`, else null.
    #[schema(required = true)]
    pub next_action: Option<NextAction>,
    pub created_at: String,
}

/// What the customer does to complete a payment that `requires_action`.
#[derive(Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// Visit `redirect_url` (3-D Secure, a gateway's page).
    RedirectToUrl { redirect_url: String },
    /// Open the customer's UPI app with `upi_url` (a `upi://pay?…` link).
    UpiIntent {
        upi_url: String,
        redirect_url: String,
    },
    /// Stripe.js: `stripe.handleNextAction({clientSecret})`; only in the answer to the
    /// payment request (the client secret is not stored).
    UseStripeSdk {
        client_secret: String,
        redirect_url: String,
    },
}

/// One refund of a payment.
#[derive(Serialize, ToSchema)]
pub struct RefundView {
    /// `re_…`
    pub id: String,
    /// Always `refund`.
    #[schema(value_type = String, pattern = "^refund$")]
    pub object: &'static str,
    pub order_id: String,
    pub payment_id: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    #[schema(pattern = "^(pending|succeeded|failed)$")]
    pub status: String,
    /// `requested` by the merchant, or why Till gave a payment back on its own.
    pub reason: String,
    pub created_at: String,
}

pub async fn view(conn: &mut AnyConnection, id: &str) -> Result<Option<PaymentView>> {
    Ok(store::record(conn, &PaymentId::from(id))
        .await?
        .map(payment_view))
}

pub async fn views_for_order(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<PaymentView>> {
    let records = store::records_for_order(conn, &OrderId::from(order_id)).await?;
    Ok(records.into_iter().map(payment_view).collect())
}

/// The attempt as the API shows it, from its record.
pub fn payment_view(r: PaymentRecord) -> PaymentView {
    let p = r.payment;
    let next_action = match (p.status, r.redirect_url) {
        // A UPI intent: the link opens the customer's UPI app.
        (Status::RequiresAction, Some(url)) if url.starts_with("upi://") => {
            Some(NextAction::UpiIntent {
                upi_url: url.clone(),
                redirect_url: url,
            })
        }
        (Status::RequiresAction, Some(url)) => {
            Some(NextAction::RedirectToUrl { redirect_url: url })
        }
        _ => None,
    };
    PaymentView {
        id: p.id.to_string(),
        object: "payment",
        order_id: p.order_id.to_string(),
        status: p.status.as_str().to_string(),
        amount: p.amount.minor,
        currency: p.amount.currency.code().to_string(),
        method: p.method.as_str().to_string(),
        gateway: p.gateway,
        failure_code: r.failure_code,
        next_action,
        created_at: rfc3339(r.created_at),
    }
}

/// The `next_action` for Stripe.js (`stripe.handleNextAction({clientSecret})`), put in the
/// answer to the payment request only: the client secret is not stored.
pub fn stripe_js_action(redirect_url: &str, client_secret: &str) -> NextAction {
    NextAction::UseStripeSdk {
        client_secret: client_secret.to_string(),
        redirect_url: redirect_url.to_string(),
    }
}

fn refund_view(r: RefundRecord) -> RefundView {
    let f = r.refund;
    RefundView {
        id: f.id.to_string(),
        object: "refund",
        order_id: f.order_id.to_string(),
        payment_id: f.payment_id.to_string(),
        amount: f.amount.minor,
        currency: f.amount.currency.code().to_string(),
        status: f.status.as_str().to_string(),
        reason: f.reason,
        created_at: rfc3339(r.created_at),
    }
}

pub async fn refund_view_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<RefundView>> {
    let record = store::refund_record_by_id(conn, &RefundId::from(id)).await?;
    Ok(record.map(refund_view))
}

pub async fn refund_views_for_order(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Vec<RefundView>> {
    let records = store::refund_records_for_order(conn, &OrderId::from(order_id)).await?;
    Ok(records.into_iter().map(refund_view).collect())
}
