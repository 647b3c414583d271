//! Razorpay's wire types (the subset Till uses) and their mapping to Till's outcomes.
//! Unknown statuses map to `Processing`: only an explicit capture or failure is final.

use serde::Deserialize;

use crate::payments::gateway::Outcome;

/// Notes key carrying Till's payment id on every Razorpay order and payment Till makes.
pub const NOTES_KEY: &str = "till_payment";

#[derive(Clone, Debug, Deserialize)]
pub struct Order {
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Collection<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Payment {
    pub id: String,
    pub status: String,
    /// Required: reconciliation and webhook binding compare it, so a missing one must not
    /// read as zero.
    pub amount: i64,
    /// Upper case ISO 4217, as Razorpay writes it.
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub amount_refunded: i64,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub notes: serde_json::Value,
}

/// The answer to a payment creation: the payment's id and what the customer must do next.
#[derive(Clone, Debug, Deserialize)]
pub struct Created {
    pub razorpay_payment_id: String,
    #[serde(default)]
    pub next: Vec<NextAction>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NextAction {
    pub action: String,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub event: String,
    pub payload: EventPayload,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EventPayload {
    #[serde(default)]
    pub payment: Option<Entity>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Entity {
    pub entity: Payment,
}

/// Till's outcome for a Razorpay payment; `action_url` is the pending customer step, if any.
pub fn outcome(p: &Payment, action_url: Option<&str>) -> Outcome {
    match p.status.as_str() {
        "captured" | "refunded" => Outcome::Succeeded,
        "authorized" => Outcome::Authorized,
        "failed" => Outcome::Failed {
            code: p
                .error_reason
                .clone()
                .or_else(|| p.error_code.clone())
                .unwrap_or_else(|| "payment_failed".into()),
        },
        "created" => match action_url {
            Some(url) => Outcome::RequiresAction {
                redirect_url: url.to_string(),
                client_secret: None,
            },
            None => Outcome::Processing,
        },
        _ => Outcome::Processing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: &str) -> Payment {
        serde_json::from_value(
            serde_json::json!({"id": "pay_1", "status": status, "amount": 100, "error_reason": "payment_failed"}),
        )
        .unwrap()
    }

    #[test]
    fn statuses_map_and_unknown_stays_processing() {
        assert_eq!(outcome(&payment("captured"), None), Outcome::Succeeded);
        assert_eq!(outcome(&payment("refunded"), None), Outcome::Succeeded);
        assert_eq!(outcome(&payment("authorized"), None), Outcome::Authorized);
        assert_eq!(
            outcome(&payment("failed"), None),
            Outcome::Failed {
                code: "payment_failed".into()
            }
        );
        assert_eq!(outcome(&payment("created"), None), Outcome::Processing);
        assert_eq!(
            outcome(&payment("created"), Some("upi://pay?x")),
            Outcome::RequiresAction {
                redirect_url: "upi://pay?x".into(),
                client_secret: None,
            }
        );
        assert_eq!(
            outcome(&payment("something_new"), None),
            Outcome::Processing
        );
    }
}
