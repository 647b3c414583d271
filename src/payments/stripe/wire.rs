//! Stripe's wire types (the subset Till uses) and their mapping to Till's outcomes. Unknown
//! statuses map to `Processing`: only an explicit success or failure is final.

use std::collections::HashMap;

use serde::Deserialize;

use crate::payments::gateway::Outcome;

/// The API version Till's requests are pinned to (`Stripe-Version`), the one stripe-python 16
/// pins: the shapes Till reads cannot change under it when the account's default moves on.
pub const API_VERSION: &str = "2026-10-28.endive";

/// Metadata key carrying Till's payment id on every PaymentIntent Till creates.
pub const METADATA_KEY: &str = "till_payment";

#[derive(Clone, Debug, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: String,
    /// Required: reconciliation and webhook binding compare it, so a missing one must not
    /// read as zero.
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
    /// Lets the customer's browser (Stripe.js) act on this one PaymentIntent.
    #[serde(default)]
    pub client_secret: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NextAction {
    #[serde(default)]
    pub redirect_to_url: Option<RedirectToUrl>,
    /// Present when Stripe leaves the challenge to Stripe.js (`type: use_stripe_sdk`): its
    /// contents are Stripe.js's business, but a 3-D Secure one names the challenge page.
    #[serde(default)]
    pub use_stripe_sdk: Option<UseStripeSdk>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct UseStripeSdk {
    #[serde(default)]
    pub stripe_js: Option<String>,
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
        // The customer acts at the redirect, or at the 3-D Secure page Stripe.js would open.
        "requires_action" => {
            let action = pi.next_action.as_ref();
            let redirect = action.and_then(|a| a.redirect_to_url.as_ref().map(|r| r.url.clone()));
            // Stripe.js runs the step itself: it needs the client secret; the page it would
            // open is where a customer without Stripe.js goes.
            let sdk = action
                .and_then(|a| a.use_stripe_sdk.as_ref())
                .and_then(|sdk| sdk.stripe_js.clone());
            match (redirect, sdk) {
                (Some(redirect_url), _) => Outcome::RequiresAction {
                    redirect_url,
                    client_secret: None,
                },
                (None, Some(redirect_url)) => Outcome::RequiresAction {
                    redirect_url,
                    client_secret: pi.client_secret.clone(),
                },
                (None, None) => Outcome::Processing,
            }
        }
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
                outcome(&pi(
                    serde_json::json!({"id": "pi_1", "amount": 100, "status": status})
                )),
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
            serde_json::json!({"id": "pi_1", "amount": 100, "status": "requires_payment_method",
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}}),
        );
        assert_eq!(
            outcome(&declined),
            Outcome::Failed {
                code: "insufficient_funds".into()
            }
        );
        let generic = pi(
            serde_json::json!({"id": "pi_1", "amount": 100, "status": "requires_payment_method",
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"}}),
        );
        assert_eq!(
            outcome(&generic),
            Outcome::Failed {
                code: "card_declined".into()
            }
        );
        let action = pi(
            serde_json::json!({"id": "pi_1", "amount": 100, "status": "requires_action",
            "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://x/3ds"}}}),
        );
        assert_eq!(
            outcome(&action),
            Outcome::RequiresAction {
                redirect_url: "https://x/3ds".into(),
                client_secret: None,
            }
        );
        let sdk = pi(
            serde_json::json!({"id": "pi_1", "amount": 100, "status": "requires_action",
            "client_secret": "pi_1_secret_x",
            "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": "https://x/js"}}}),
        );
        assert_eq!(
            outcome(&sdk),
            Outcome::RequiresAction {
                redirect_url: "https://x/js".into(),
                client_secret: Some("pi_1_secret_x".into()),
            }
        );
        let opaque = pi(
            serde_json::json!({"id": "pi_1", "amount": 100, "status": "requires_action",
            "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}}}),
        );
        assert_eq!(outcome(&opaque), Outcome::Processing);
    }
}
