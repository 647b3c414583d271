//! Stripe's objects as the simulator renders them from its records: the PaymentIntent and
//! its Charge, with every field Stripe's OpenAPI marks required (null where the simulator
//! has nothing to say), amounts in minor units, currencies lowercase as Stripe answers them.

use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

use super::Simulator;
use crate::support::{hmac_hex, sha256_hex};

pub(super) const INTENT_COLUMNS: &str =
    "id, amount, amount_captured, currency, status, failure_code, capture_manual,
    metadata, source, refunded, return_url, created_at, updated_at";

/// What the simulator knows of one PaymentIntent, read once and rendered as Stripe does.
pub(super) struct Intent {
    pub id: String,
    pub amount: i64,
    /// Taken by the capture; `None` means the whole amount once the intent succeeded.
    pub amount_captured: Option<i64>,
    pub currency: String,
    pub status: String,
    pub failure: Option<String>,
    pub manual: bool,
    pub metadata: Value,
    pub payment_method: Option<String>,
    pub refunded: i64,
    pub return_url: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Intent {
    pub(super) fn from_row(r: &sqlx::any::AnyRow) -> Intent {
        Intent {
            id: r.get("id"),
            amount: r.get("amount"),
            amount_captured: r.get("amount_captured"),
            currency: r.get::<String, _>("currency").to_lowercase(),
            status: r.get("status"),
            failure: r.get("failure_code"),
            manual: r.get::<i64, _>("capture_manual") == 1,
            metadata: r
                .get::<Option<String>, _>("metadata")
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or(json!({})),
            payment_method: Some(r.get::<String, _>("source")).filter(|s| !s.is_empty()),
            refunded: r.get("refunded"),
            return_url: r.get("return_url"),
            created_ms: r.get("created_at"),
            updated_ms: r.get("updated_at"),
        }
    }

    /// Money actually taken: what a refund can give back.
    pub fn received(&self) -> i64 {
        if self.status == "succeeded" {
            self.amount_captured.unwrap_or(self.amount)
        } else {
            0
        }
    }

    /// The charge of this intent's last attempt, once it was confirmed with a method.
    pub fn charge_id(&self) -> Option<String> {
        let attempted = matches!(
            self.status.as_str(),
            "requires_capture" | "succeeded" | "processing"
        ) || self.failure.is_some()
            || (self.status == "canceled" && self.payment_method.is_some());
        attempted.then(|| charge_id_of(&self.id))
    }
}

/// A PaymentIntent's charge id and back: the simulator keeps one charge per intent.
pub(super) fn charge_id_of(intent_id: &str) -> String {
    format!("ch_{}", intent_id.strip_prefix("pi_").unwrap_or(intent_id))
}

pub(super) fn intent_id_of(charge_id: &str) -> Option<String> {
    charge_id
        .strip_prefix("ch_")
        .map(|rest| format!("pi_{rest}"))
}

pub(super) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Intent>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {INTENT_COLUMNS} FROM sim_payments WHERE id = $1 AND protocol = 'stripe'"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(Intent::from_row))
}

/// A PaymentIntent as Stripe renders it now, for the webhook sender.
pub(super) async fn intent(sim: &Simulator, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let mut conn = sim.inner.pool.acquire().await?;
    Ok(load(&mut conn, id).await?.map(|pi| render(sim, &pi, false)))
}

/// The secret Stripe.js confirms with: derived from the id and the API key, so it is stable
/// and cannot be guessed without the key.
fn client_secret(sim: &Simulator, id: &str) -> String {
    let mac = hmac_hex(&sim.inner.stripe_secret_key, id.as_bytes());
    format!("{id}_secret_{}", &mac[..24])
}

/// A PaymentIntent with every field Stripe's OpenAPI marks required (null where the
/// simulator has nothing to say).
pub(super) fn render(sim: &Simulator, pi: &Intent, expand_charge: bool) -> Value {
    let challenge = format!("{}/sim/3ds/{}", sim.own_url(), pi.id);
    // With a return URL Stripe redirects the customer; without one it leaves the
    // challenge to Stripe.js (`handleNextAction` with the client secret).
    let next_action = (pi.status == "requires_action").then(|| match &pi.return_url {
        Some(return_url) => json!({"type": "redirect_to_url",
            "redirect_to_url": {"url": challenge, "return_url": return_url}}),
        None => json!({"type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": challenge,
                "source": format!("src_{}", &sha256_hex(pi.id.as_bytes())[..24])}}),
    });
    let last_payment_error = pi.failure.as_ref().map(|code| {
        let decline = if code == "card_declined" {
            "generic_decline"
        } else {
            code.as_str()
        };
        json!({"type": "card_error", "code": "card_declined", "decline_code": decline,
            "message": "Your card was declined.", "charge": charge_id_of(&pi.id)})
    });
    let latest_charge = match pi.charge_id() {
        Some(_) if expand_charge => charge(pi),
        Some(id) => Value::String(id),
        None => Value::Null,
    };
    let mut object = json!({
        "id": pi.id, "object": "payment_intent",
        "allowed_payment_method_types": ["card"],
        "amount": pi.amount,
        "amount_capturable": if pi.status == "requires_capture" { pi.amount } else { 0 },
        "amount_received": pi.received(),
        "canceled_at": (pi.status == "canceled").then_some(pi.updated_ms / 1000),
        "capture_method": if pi.manual { "manual" } else { "automatic" },
        "client_secret": client_secret(sim, &pi.id),
        "confirmation_method": "automatic",
        "created": pi.created_ms / 1000, "currency": pi.currency,
        "last_payment_error": last_payment_error, "latest_charge": latest_charge,
        "livemode": false, "metadata": pi.metadata, "next_action": next_action,
        "payment_method": pi.payment_method,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "status": pi.status,
    });
    for field in INTENT_NULL_FIELDS {
        object[*field] = Value::Null;
    }
    object
}

/// Required PaymentIntent fields the simulator has nothing to say about.
const INTENT_NULL_FIELDS: &[&str] = &[
    "application",
    "application_fee_amount",
    "automatic_payment_methods",
    "cancellation_reason",
    "customer",
    "customer_account",
    "description",
    "excluded_payment_method_types",
    "managed_payments",
    "on_behalf_of",
    "payment_method_configuration_details",
    "payment_record",
    "processing",
    "receipt_email",
    "review",
    "setup_future_usage",
    "shipping",
    "source",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_group",
];

/// Required Charge fields the simulator has nothing to say about.
const CHARGE_NULL_FIELDS: &[&str] = &[
    "application",
    "application_fee",
    "application_fee_amount",
    "customer",
    "description",
    "failure_balance_transaction",
    "on_behalf_of",
    "receipt_email",
    "receipt_number",
    "receipt_url",
    "review",
    "shipping",
    "source",
    "source_transfer",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
];

/// The intent's charge, with the fields Stripe's OpenAPI marks required.
pub(super) fn charge(pi: &Intent) -> Value {
    let failed = pi.failure.is_some();
    let captured = pi.status == "succeeded";
    let amount_captured = pi.received();
    let status = match pi.status.as_str() {
        _ if failed => "failed",
        "processing" => "pending",
        _ => "succeeded",
    };
    let mut object = json!({
        "id": charge_id_of(&pi.id), "object": "charge", "amount": pi.amount,
        "amount_captured": amount_captured, "amount_refunded": pi.refunded,
        "balance_transaction": captured.then(|| format!("txn_{}", &pi.id[3..])),
        "billing_details": {"address": null, "email": null, "name": null, "phone": null, "tax_id": null},
        "calculated_statement_descriptor": "TILL SIMULATOR", "captured": captured,
        "created": pi.created_ms / 1000, "currency": pi.currency,
        "disputed": false,
        "failure_code": pi.failure.as_ref().map(|_| "card_declined"),
        "failure_message": pi.failure.as_ref().map(|_| "Your card was declined."),
        "fraud_details": {}, "livemode": false, "metadata": pi.metadata,
        "outcome": {"type": if failed { "issuer_declined" } else { "authorized" },
            "network_status": if failed { "declined_by_network" } else { "approved_by_network" },
            "reason": pi.failure, "risk_level": "normal",
            "seller_message": if failed { "The bank declined the payment." } else { "Payment complete." }},
        "paid": !failed && status == "succeeded", "payment_intent": pi.id,
        "payment_method": pi.payment_method,
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}},
        "refunded": amount_captured > 0 && pi.refunded >= amount_captured,
        "status": status,
    });
    for field in CHARGE_NULL_FIELDS {
        object[*field] = Value::Null;
    }
    object
}
