//! Webhooks the test writes itself, signed with the secrets it gave Till: Stripe
//! (`Stripe-Signature: t=…,v1=HMAC("{t}.{body}")`), Razorpay (`X-Razorpay-Signature`: hex
//! HMAC of the body, and an unsigned `X-Razorpay-Event-Id`) and the simulator's own protocol.

use serde_json::{json, Value};
use till::payments::signature::{hmac_hex, sign};

use crate::gateway_sim::{RAZORPAY_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET};
use crate::helpers::TestApp;

pub const SIM_WEBHOOK_SECRET: &str = "sim_whsec_races";

#[derive(Clone, Debug)]
pub struct Webhook {
    /// The gateway in the URL: `/v1/webhooks/{gateway}`.
    pub gateway: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Webhook {
    /// A Stripe event carrying `intent`, typed by its status.
    pub fn stripe(intent: Value) -> Webhook {
        let kind = match intent["status"].as_str() {
            Some("succeeded") => "payment_intent.succeeded",
            _ => "payment_intent.amount_capturable_updated",
        };
        let body =
            json!({"id": new_event_id(), "object": "event", "type": kind, "created": now_secs(),
            "livemode": false, "data": {"object": intent}})
            .to_string();
        let signature = sign(STRIPE_WEBHOOK_SECRET, now_secs(), body.as_bytes());
        Webhook {
            gateway: "stripe",
            headers: vec![("stripe-signature", signature)],
            body,
        }
    }

    /// A Razorpay event carrying the payment `entity`, under a fresh event id.
    pub fn razorpay(event: &str, entity: Value) -> Webhook {
        let body = json!({"entity": "event", "account_id": "acc_races", "event": event, "contains": ["payment"],
            "payload": {"payment": {"entity": entity}}, "created_at": now_secs()})
        .to_string();
        let signature = hmac_hex(RAZORPAY_WEBHOOK_SECRET, body.as_bytes());
        Webhook {
            gateway: "razorpay",
            headers: vec![
                ("x-razorpay-signature", signature),
                ("x-razorpay-event-id", new_event_id()),
            ],
            body,
        }
    }

    /// The simulator's own event: the payment `gateway_ref`, for Till's payment `key`, succeeded.
    pub fn sim(gateway_ref: &str, key: &str) -> Webhook {
        let body = json!({"id": new_event_id(), "type": "payment.succeeded", "created": now_secs(),
            "data": {"id": gateway_ref, "key": key, "status": "succeeded", "failure_code": null}})
        .to_string();
        let signature = sign(SIM_WEBHOOK_SECRET, now_secs(), body.as_bytes());
        Webhook {
            gateway: "sim",
            headers: vec![("till-sim-signature", signature)],
            body,
        }
    }

    /// The same signed body under another (unsigned) Razorpay event id.
    pub fn with_event_id(mut self, id: String) -> Webhook {
        for (name, value) in &mut self.headers {
            if *name == "x-razorpay-event-id" {
                *value = id.clone();
            }
        }
        self
    }

    /// POSTs it to Till; returns the status and the body.
    pub async fn post(&self, app: &TestApp) -> (u16, Value) {
        let mut req = app
            .http
            .post(format!("{}/v1/webhooks/{}", app.url, self.gateway))
            .header("content-type", "application/json")
            .body(self.body.clone());
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        let (status, body) = app.send(req).await;
        (status.as_u16(), body)
    }
}

/// A PaymentIntent as Stripe renders it, naming Till's payment `key` in its metadata.
pub fn intent(id: &str, amount: i64, currency: &str, status: &str, key: &str) -> Value {
    json!({"id": id, "object": "payment_intent", "amount": amount, "amount_capturable": amount, "amount_received": 0,
        "currency": currency, "status": status, "capture_method": "manual", "payment_method": "pm_card_visa",
        "metadata": {"till_payment": key}, "next_action": null, "last_payment_error": null})
}

/// A Razorpay payment entity, naming Till's payment `key` in its notes.
pub fn rzp_payment(id: &str, amount: i64, currency: &str, status: &str, key: &str) -> Value {
    json!({"id": id, "entity": "payment", "amount": amount, "currency": currency, "status": status,
        "method": "upi", "captured": status == "captured", "amount_refunded": 0, "notes": {"till_payment": key}})
}

fn new_event_id() -> String {
    format!("evt_races_{}", till::ids::random_token(10))
}

fn now_secs() -> i64 {
    till::clock::system_now_ms() / 1000
}
