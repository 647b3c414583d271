//! Stripe's wire types (the subset Till uses) and their mapping to Till's outcomes. Unknown
//! statuses map to `Processing`: only an explicit success or failure is final.

use std::collections::HashMap;

use serde::Deserialize;

use crate::payments::gateway::Outcome;

/// Metadata key carrying Till's payment id on every PaymentIntent Till creates.
pub const METADATA_KEY: &str = "till_payment";

#[derive(Clone, Debug, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub amount: i64,
    /// Lower case, as Stripe writes it.
    #[serde(default)]
    pub currency: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    pub next_action: Option<NextAction>,
    #[serde(default)]
    pub last_payment_error: Option<StripeError>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NextAction {
    #[serde(default)]
    pub redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RedirectToUrl {
    pub url: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ErrorEnvelope {
    pub error: StripeError,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StripeError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Box<PaymentIntent>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// Till's failure code for a decline: the specific decline reason when Stripe gives one.
pub fn failure_code(err: Option<&StripeError>) -> String {
    let Some(err) = err else {
        return "payment_failed".into();
    };
    match (&err.decline_code, &err.code) {
        (Some(decline), _) if decline != "generic_decline" => decline.clone(),
        (_, Some(code)) => code.clone(),
        _ => "payment_failed".into(),
    }
}

pub fn outcome(pi: &PaymentIntent) -> Outcome {
    match pi.status.as_str() {
        "succeeded" => Outcome::Succeeded,
        "requires_capture" => Outcome::Authorized,
        "canceled" => Outcome::Canceled,
        "requires_action" => match pi
            .next_action
            .as_ref()
            .and_then(|a| a.redirect_to_url.as_ref())
        {
            Some(redirect) => Outcome::RequiresAction {
                redirect_url: redirect.url.clone(),
            },
            None => Outcome::Processing,
        },
        // A confirmed PaymentIntent back at requires_payment_method was declined.
        "requires_payment_method" if pi.last_payment_error.is_some() => Outcome::Failed {
            code: failure_code(pi.last_payment_error.as_ref()),
        },
        _ => Outcome::Processing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi(json: serde_json::Value) -> PaymentIntent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn statuses_map_and_unknown_stays_processing() {
        let check = |status: &str, expected: Outcome| {
            assert_eq!(
                outcome(&pi(serde_json::json!({"id": "pi_1", "status": status}))),
                expected,
                "{status}"
            );
        };
        check("succeeded", Outcome::Succeeded);
        check("requires_capture", Outcome::Authorized);
        check("canceled", Outcome::Canceled);
        check("processing", Outcome::Processing);
        check("requires_confirmation", Outcome::Processing);
        check("requires_payment_method", Outcome::Processing);
        check("something_new", Outcome::Processing);
        let declined = pi(
            serde_json::json!({"id": "pi_1", "status": "requires_payment_method",
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}}),
        );
        assert_eq!(
            outcome(&declined),
            Outcome::Failed {
                code: "insufficient_funds".into()
            }
        );
        let generic = pi(
            serde_json::json!({"id": "pi_1", "status": "requires_payment_method",
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"}}),
        );
        assert_eq!(
            outcome(&generic),
            Outcome::Failed {
                code: "card_declined".into()
            }
        );
        let action = pi(
            serde_json::json!({"id": "pi_1", "status": "requires_action",
            "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://x/3ds"}}}),
        );
        assert_eq!(
            outcome(&action),
            Outcome::RequiresAction {
                redirect_url: "https://x/3ds".into()
            }
        );
    }
}
