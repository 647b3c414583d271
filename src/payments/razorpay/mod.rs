//! The Razorpay adapter: UPI (collect, and intent with a `upi://pay` link, since collect is
//! being phased out), wallets and cards through the Orders API → payment → capture; refunds
//! with `X-Refund-Idempotency`; webhooks signed with `X-Razorpay-Signature` and deduplicated
//! by `X-Razorpay-Event-Id`; and the payment signature `HMAC(order_id|payment_id)`.
//!
//! Razorpay has no idempotency key for orders and payments, so the adapter makes its calls
//! repeatable itself: one Razorpay order per Till payment attempt, found again by its
//! `receipt` (the attempt id), and at most one payment per order, found again by listing the
//! order's payments. Razorpay has no void either: an authorization that is never captured is
//! refunded by Razorpay, so not capturing it is the void.
//!
//! Over 400 lines: the repeatable calls above (find-or-create of orders and payments) on top
//! of one call per trait method; the wire types are in `wire.rs`.

pub mod wire;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::gateway::{
    BoxFuture, Charge, Gateway, GatewayError, GatewayPayment, GatewayRecord, Outcome, WebhookEvent,
    LIST_PAGES_MAX,
};
use super::retry::{self, Answer};
use super::signature::{hmac_hex, verify_hmac_hex};
use super::Method;
use crate::ids::sha256_hex;
use wire::{Collection, Created, Event, Order, Payment, NOTES_KEY};

/// The source that asks for a UPI intent (a `upi://pay` link the customer opens in a UPI
/// app) instead of a collect request to a VPA.
pub const UPI_INTENT_SOURCE: &str = "upi_intent";

#[derive(Clone)]
pub struct Razorpay {
    /// The API's base URL (`https://api.razorpay.com`, or a simulator's `…/sim/razorpay`).
    base: String,
    key_id: String,
    key_secret: String,
    /// Accepted webhook secrets: more than one while a secret is being rotated.
    webhook_secrets: Vec<String>,
    http: reqwest::Client,
}

/// Checks the signature Razorpay's Checkout hands the customer after a payment:
/// hex HMAC-SHA256 of `"{order_id}|{payment_id}"` with the key secret, in constant time.
pub fn verify_payment_signature(
    key_secret: &str,
    order_id: &str,
    payment_id: &str,
    signature: &str,
) -> bool {
    verify_hmac_hex(
        key_secret,
        format!("{order_id}|{payment_id}").as_bytes(),
        signature,
    )
}

/// The signature Razorpay computes for a payment (the simulator uses it).
pub fn payment_signature(key_secret: &str, order_id: &str, payment_id: &str) -> String {
    hmac_hex(key_secret, format!("{order_id}|{payment_id}").as_bytes())
}

impl Razorpay {
    pub fn new(
        base: String,
        key_id: String,
        key_secret: String,
        webhook_secrets: Vec<String>,
    ) -> Razorpay {
        Razorpay {
            base,
            key_id,
            key_secret,
            webhook_secrets,
            http: retry::client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn get(&self, path: &str) -> Result<Answer, GatewayError> {
        let url = self.url(path);
        retry::send(|| {
            self.http
                .get(&url)
                .basic_auth(&self.key_id, Some(&self.key_secret))
        })
        .await
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        idempotency: Option<&str>,
    ) -> Result<Answer, GatewayError> {
        let url = self.url(path);
        retry::send(|| {
            let mut req = self
                .http
                .post(&url)
                .basic_auth(&self.key_id, Some(&self.key_secret))
                .json(body);
            if let Some(key) = idempotency {
                req = req.header("X-Refund-Idempotency", key);
            }
            req
        })
        .await
    }

    /// The Razorpay order of this attempt, created once.
    async fn order_for(&self, charge: &Charge) -> Result<String, GatewayError> {
        let found: Collection<Order> = parse(
            self.get(&format!("/v1/orders?receipt={}", charge.key))
                .await?,
        )?;
        if let Some(order) = found.items.into_iter().next() {
            return Ok(order.id);
        }
        let body = json!({"amount": charge.amount_minor, "currency": charge.currency, "receipt": charge.key, "notes": {NOTES_KEY: charge.key}});
        match parse::<Order>(self.post("/v1/orders", &body, None).await?) {
            Ok(order) => Ok(order.id),
            // Another caller made this attempt's order a moment ago: use theirs.
            Err(err) => {
                let again: Collection<Order> = parse(
                    self.get(&format!("/v1/orders?receipt={}", charge.key))
                        .await?,
                )?;
                again.items.into_iter().next().map(|o| o.id).ok_or(err)
            }
        }
    }

    /// The order's payment, if one was made: the latest that has not failed, else the latest.
    async fn existing_payment(&self, order_id: &str) -> Result<Option<Payment>, GatewayError> {
        let list: Collection<Payment> =
            parse(self.get(&format!("/v1/orders/{order_id}/payments")).await?)?;
        let mut items = list.items;
        let alive = items.iter().rposition(|p| p.status != "failed");
        Ok(match alive {
            Some(i) => Some(items.swap_remove(i)),
            None => items.pop(),
        })
    }

    /// This attempt's payment: by id when known, else through its order.
    async fn payment_of(&self, charge: &Charge) -> Result<Option<Payment>, GatewayError> {
        match &charge.gateway_ref {
            Some(id) => Ok(Some(parse(self.get(&format!("/v1/payments/{id}")).await?)?)),
            None => {
                let order_id = self.order_for(charge).await?;
                self.existing_payment(&order_id).await
            }
        }
    }

    async fn create_payment(&self, charge: &Charge) -> Result<GatewayPayment, GatewayError> {
        let order_id = self.order_for(charge).await?;
        if let Some(payment) = self.existing_payment(&order_id).await? {
            return Ok(to_gateway(&payment, None));
        }
        let mut body = json!({
            "amount": charge.amount_minor, "currency": charge.currency, "order_id": order_id,
            "email": "customer@till.invalid", "contact": "+919000000000", "method": charge.method.as_str(),
            "notes": {NOTES_KEY: charge.key},
        });
        match charge.method {
            Method::Upi if charge.source == UPI_INTENT_SOURCE => {
                body["upi"] = json!({"flow": "intent"})
            }
            Method::Upi => body["upi"] = json!({"flow": "collect", "vpa": charge.source}),
            Method::Wallet => body["wallet"] = json!(charge.source),
            Method::Card => body["token"] = json!(charge.source),
        }
        let created: Created = parse(self.post("/v1/payments/create/json", &body, None).await?)?;
        let action_url = created
            .next
            .iter()
            .find(|n| n.action == "intent" || n.action == "redirect")
            .and_then(|n| n.url.clone());
        let payment: Payment = parse(
            self.get(&format!("/v1/payments/{}", created.razorpay_payment_id))
                .await?,
        )?;
        Ok(to_gateway(&payment, action_url.as_deref()))
    }
}

/// A Razorpay payment as a reconciliation record.
fn record_of(p: &Payment) -> GatewayRecord {
    GatewayRecord {
        key: p
            .notes
            .get(NOTES_KEY)
            .and_then(Value::as_str)
            .map(str::to_string),
        outcome: wire::outcome(p, None),
        gateway_ref: p.id.clone(),
        amount_minor: p.amount,
        refunded_minor: p.amount_refunded,
        currency: p.currency.to_uppercase(),
        created_secs: p.created_at,
    }
}

fn to_gateway(p: &Payment, action_url: Option<&str>) -> GatewayPayment {
    GatewayPayment {
        gateway_ref: p.id.clone(),
        outcome: wire::outcome(p, action_url),
    }
}

/// A 2xx body as `T`; any other answer that reached here (a definite 4xx) is a rejection.
fn parse<T: serde::de::DeserializeOwned>(answer: Answer) -> Result<T, GatewayError> {
    if !(200..300).contains(&answer.status) {
        let description = answer.body["error"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return Err(GatewayError::Rejected(format!(
            "razorpay {}: {description}",
            answer.status
        )));
    }
    serde_json::from_value(answer.body)
        .map_err(|e| GatewayError::Unavailable(format!("unreadable Razorpay answer: {e}")))
}

impl Gateway for Razorpay {
    fn name(&self) -> &'static str {
        "razorpay"
    }

    fn check_source(&self, method: Method, source: &str) -> Result<(), String> {
        let word = !source.is_empty()
            && source.len() <= 64
            && source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        match method {
            Method::Upi if source == UPI_INTENT_SOURCE || super::valid_vpa(source) => Ok(()),
            Method::Upi => Err(format!(
                "a UPI source is a VPA (name@bank) or {UPI_INTENT_SOURCE}"
            )),
            Method::Wallet | Method::Card if word => Ok(()),
            Method::Wallet | Method::Card => Err(format!("invalid {} source", method.as_str())),
        }
    }

    fn create<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(self.create_payment(charge))
    }

    fn list<'a>(
        &'a self,
        since_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<GatewayRecord>, GatewayError>> {
        Box::pin(async move {
            let mut records = Vec::new();
            let from = since_secs.map(|s| format!("&from={s}")).unwrap_or_default();
            for page in 0..LIST_PAGES_MAX {
                let answer = self
                    .get(&format!("/v1/payments?count=100&skip={}{from}", page * 100))
                    .await?;
                if answer.status != 200 {
                    return Err(GatewayError::Rejected(format!(
                        "razorpay list: {} {}",
                        answer.status, answer.body
                    )));
                }
                let items = answer.body["items"].as_array().cloned().unwrap_or_default();
                let got = items.len();
                let mut older = false;
                for item in items {
                    // A payment reconciliation cannot read is not skipped: the listing fails.
                    let p = serde_json::from_value::<Payment>(item).map_err(|e| {
                        GatewayError::Unavailable(format!("unreadable payment in listing: {e}"))
                    })?;
                    // Newest first: the rest are older than asked for.
                    if since_secs.is_some_and(|s| p.created_at < s) {
                        older = true;
                        break;
                    }
                    records.push(record_of(&p));
                }
                if older || got < 100 {
                    break;
                }
            }
            Ok(records)
        })
    }

    fn fetch<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<Option<GatewayRecord>, GatewayError>> {
        Box::pin(async move { Ok(self.payment_of(charge).await?.as_ref().map(record_of)) })
    }

    fn voids(&self) -> bool {
        false
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), GatewayError>> {
        Box::pin(async move {
            let answer = self.get("/v1/payments?count=1").await?;
            match answer.status {
                200 => Ok(()),
                401 => Err(GatewayError::Rejected(
                    "401: the key was refused (TILL_RAZORPAY_KEY_ID, TILL_RAZORPAY_KEY_SECRET)"
                        .into(),
                )),
                status => Err(GatewayError::Rejected(format!("{status} {}", answer.body))),
            }
        })
    }

    fn capture<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(async move {
            let payment = self
                .payment_of(charge)
                .await?
                .ok_or_else(|| GatewayError::Rejected("no payment to capture".into()))?;
            if payment.status != "authorized" {
                return Ok(to_gateway(&payment, None));
            }
            let body = json!({"amount": charge.amount_minor, "currency": charge.currency});
            let answer = self
                .post(&format!("/v1/payments/{}/capture", payment.id), &body, None)
                .await?;
            if (200..300).contains(&answer.status) {
                return Ok(to_gateway(&parse::<Payment>(answer)?, None));
            }
            // Captured meanwhile (a retried capture): the payment as it stands is the answer.
            Ok(to_gateway(
                &parse::<Payment>(self.get(&format!("/v1/payments/{}", payment.id)).await?)?,
                None,
            ))
        })
    }

    fn cancel<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(async move {
            // Razorpay cannot void: an authorization that is never captured lapses and the
            // customer gets it back. So a void is Till's promise never to capture this
            // attempt (its `Fate::Void` makes Till keep it), and the gateway is asked only
            // to learn whether the money already moved. Nothing there yet, or a payment
            // still waiting for the customer, is released just the same: whatever it becomes
            // is never captured (reconciliation checks that), and a capture that happened
            // anyway is refunded.
            let Some(payment) = self.payment_of(charge).await? else {
                return Ok(GatewayPayment {
                    gateway_ref: String::new(),
                    outcome: Outcome::Released,
                });
            };
            Ok(match wire::outcome(&payment, None) {
                Outcome::Processing | Outcome::RequiresAction { .. } | Outcome::Authorized => {
                    GatewayPayment {
                        gateway_ref: payment.id,
                        outcome: Outcome::Released,
                    }
                }
                _ => to_gateway(&payment, None),
            })
        })
    }

    fn refund<'a>(
        &'a self,
        charge: &'a Charge,
        refund_key: &'a str,
        amount_minor: i64,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            let payment = self
                .payment_of(charge)
                .await?
                .ok_or_else(|| GatewayError::Rejected("no payment to refund".into()))?;
            let answer = self
                .post(
                    &format!("/v1/payments/{}/refund", payment.id),
                    &json!({"amount": amount_minor}),
                    Some(&format!("till_{refund_key}")),
                )
                .await?;
            parse::<Value>(answer).map(|_| ())
        })
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now_secs: i64,
    ) -> Result<Option<WebhookEvent>, String> {
        let signature = headers
            .get("x-razorpay-signature")
            .and_then(|h| h.to_str().ok())
            .ok_or("missing X-Razorpay-Signature header")?;
        if !self
            .webhook_secrets
            .iter()
            .any(|secret| verify_hmac_hex(secret, body, signature))
        {
            return Err("signature does not match".into());
        }
        // `X-Razorpay-Event-Id` is not covered by the signature: anyone replaying a captured
        // body could pick a new one. The signed body itself is what duplicates share.
        let event_id = format!("body_{}", sha256_hex(body));
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| format!("webhook body is not a Razorpay event: {e}"))?;
        let Some(entity) = event
            .payload
            .payment
            .filter(|_| event.event.starts_with("payment."))
        else {
            return Ok(None);
        };
        let payment = entity.entity;
        let Some(key) = payment
            .notes
            .get(NOTES_KEY)
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Ok(None);
        };
        Ok(Some(WebhookEvent {
            event_id,
            payment_key: key,
            payment: to_gateway(&payment, None),
            amount_minor: payment.amount,
            currency: payment.currency.to_uppercase(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_signature_is_hmac_of_order_and_payment() {
        let sig = payment_signature("secret", "order_1", "pay_1");
        assert!(verify_payment_signature("secret", "order_1", "pay_1", &sig));
        assert!(!verify_payment_signature(
            "secret", "order_1", "pay_2", &sig
        ));
        assert!(!verify_payment_signature("other", "order_1", "pay_1", &sig));
    }
}
