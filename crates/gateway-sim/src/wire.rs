//! The wire facts the simulator's Stripe and Razorpay endpoints speak. Till's adapters know
//! the same facts from their side: a gateway and its client each know the protocol.

use serde_json::Value;

/// The Stripe API version the simulator answers as (`Stripe-Version`, events' `api_version`).
pub(crate) const STRIPE_API_VERSION: &str = "2026-10-28.endive";

/// The source of a Razorpay UPI intent payment (the customer's app pays a `upi://` link).
pub(crate) const UPI_INTENT_SOURCE: &str = "upi_intent";

/// A form-encoded Stripe request body as pairs; `None` when it is not form encoding.
pub(crate) fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(body).ok()
}

/// The JSON body of a Stripe error.
pub(crate) fn error_body(kind: &str, code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"type": kind, "code": code, "message": message}})
}
