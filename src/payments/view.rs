//! Payments and refunds as the API shows them.

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::error::Result;

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
#[derive(Serialize, ToSchema)]
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
    let row = sqlx::query(&format!("{PAYMENT_VIEW_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(payment_view))
}

pub async fn views_for_order(conn: &mut AnyConnection, order_id: &str) -> Result<Vec<PaymentView>> {
    let rows = sqlx::query(&format!(
        "{PAYMENT_VIEW_SELECT} WHERE order_id = $1 ORDER BY created_at, id"
    ))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(payment_view).collect())
}

const PAYMENT_VIEW_SELECT: &str =
    "SELECT id, order_id, status, amount, currency, method, gateway, failure_code,
    redirect_url, created_at FROM payments";

fn payment_view(r: &sqlx::any::AnyRow) -> PaymentView {
    let status: String = r.get("status");
    let redirect_url: Option<String> = r.get("redirect_url");
    let next_action = match (status.as_str(), redirect_url) {
        // A UPI intent: the link opens the customer's UPI app.
        ("requires_action", Some(url)) if url.starts_with("upi://") => {
            Some(NextAction::UpiIntent {
                upi_url: url.clone(),
                redirect_url: url,
            })
        }
        ("requires_action", Some(url)) => Some(NextAction::RedirectToUrl { redirect_url: url }),
        _ => None,
    };
    PaymentView {
        id: r.get("id"),
        object: "payment",
        order_id: r.get("order_id"),
        status,
        amount: r.get("amount"),
        currency: r.get("currency"),
        method: r.get("method"),
        gateway: r.get("gateway"),
        failure_code: r.get("failure_code"),
        next_action,
        created_at: rfc3339(r.get("created_at")),
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

const REFUND_VIEW_SELECT: &str =
    "SELECT r.id, r.order_id, r.payment_id, r.amount, r.status, r.reason, r.created_at,
    p.currency FROM refunds r JOIN payments p ON p.id = r.payment_id";

fn refund_view(r: &sqlx::any::AnyRow) -> RefundView {
    RefundView {
        id: r.get("id"),
        object: "refund",
        order_id: r.get("order_id"),
        payment_id: r.get("payment_id"),
        amount: r.get("amount"),
        currency: r.get("currency"),
        status: r.get("status"),
        reason: r.get("reason"),
        created_at: rfc3339(r.get("created_at")),
    }
}

pub async fn refund_view_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<RefundView>> {
    let row = sqlx::query(&format!("{REFUND_VIEW_SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(refund_view))
}

pub async fn refund_views_for_order(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Vec<RefundView>> {
    let rows = sqlx::query(&format!(
        "{REFUND_VIEW_SELECT} WHERE r.order_id = $1 ORDER BY r.created_at, r.id"
    ))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(refund_view).collect())
}
