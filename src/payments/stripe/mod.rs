//! The Stripe adapter: PaymentIntents with manual capture (authorize when the customer pays,
//! capture when the order is confirmed, cancel to void), refunds, and webhooks. Requests are
//! form-encoded with an `Idempotency-Key` derived from Till's payment attempt (never from the
//! client's key), retried by `retry::send` when the outcome is unknown.
//!
//! Over 400 lines: the adapter's one call per trait method, each with its retry and its
//! mapping of Stripe's answers; the wire types are in `wire.rs`.

pub mod wire;

use axum::http::HeaderMap;
use serde_json::Value;

use super::gateway::{
    BoxFuture, Charge, Gateway, GatewayError, GatewayPayment, GatewayRecord, WebhookEvent,
    LIST_PAGES_MAX,
};
use super::retry::{self, Answer};
use super::signature;
use super::Method;
use wire::{ErrorEnvelope, Event, PaymentIntent, API_VERSION, METADATA_KEY};

#[derive(Clone)]
pub struct Stripe {
    /// The API's base URL (`https://api.stripe.com`, or a simulator's `…/sim/stripe`).
    base: String,
    secret_key: String,
    /// Accepted webhook signing secrets: more than one while a secret is being rotated.
    webhook_secrets: Vec<String>,
    /// Where the customer lands after a 3-D Secure challenge; with it Stripe answers a
    /// redirect (`redirect_to_url`) rather than leaving the challenge to Stripe.js.
    return_url: String,
    http: reqwest::Client,
}

impl Stripe {
    pub fn new(
        base: String,
        secret_key: String,
        webhook_secrets: Vec<String>,
        return_url: String,
    ) -> Stripe {
        Stripe {
            base,
            secret_key,
            webhook_secrets,
            return_url,
            http: retry::client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn post(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Answer, GatewayError> {
        let url = self.url(path);
        retry::send(|| {
            self.authed(self.http.post(&url))
                .header("Idempotency-Key", idempotency_key)
                .form(form)
        })
        .await
    }

    /// Every request carries the key and the pinned API version.
    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", API_VERSION)
    }

    async fn get(&self, path: &str) -> Result<Answer, GatewayError> {
        let url = self.url(path);
        retry::send(|| self.authed(self.http.get(&url))).await
    }

    async fn retrieve(&self, id: &str) -> Result<PaymentIntent, GatewayError> {
        intent_of(self.get(&format!("/v1/payment_intents/{id}")).await?)
    }

    /// The PaymentIntent's id: known from an earlier answer, or learned by repeating the
    /// create call under its idempotency key.
    async fn intent_id(&self, charge: &Charge) -> Result<String, GatewayError> {
        match &charge.gateway_ref {
            Some(id) => Ok(id.clone()),
            None => Ok(self.create_intent(charge).await?.id),
        }
    }

    async fn create_intent(&self, charge: &Charge) -> Result<PaymentIntent, GatewayError> {
        let mut form = vec![
            ("amount".to_string(), charge.amount_minor.to_string()),
            ("currency".to_string(), charge.currency.to_lowercase()),
            ("payment_method".to_string(), charge.source.clone()),
            ("payment_method_types[]".to_string(), "card".to_string()),
            ("capture_method".to_string(), "manual".to_string()),
            ("confirm".to_string(), "true".to_string()),
            (format!("metadata[{METADATA_KEY}]"), charge.key.clone()),
        ];
        // Without a return URL Stripe leaves 3-D Secure to Stripe.js (`use_stripe_sdk`).
        if !self.return_url.is_empty() {
            form.push(("return_url".to_string(), self.return_url.clone()));
        }
        let answer = self
            .post(
                "/v1/payment_intents",
                &form,
                &format!("till_{}_create", charge.key),
            )
            .await?;
        let replayed = answer.replayed;
        let intent = intent_of(answer)?;
        // A replay carries the first answer; the intent may have moved on since.
        if replayed {
            return self.retrieve(&intent.id).await;
        }
        Ok(intent)
    }

    /// Capture or cancel: a PaymentIntent already past that point answers
    /// `payment_intent_unexpected_state`, and then its current state is the answer.
    async fn act(&self, charge: &Charge, action: &str) -> Result<GatewayPayment, GatewayError> {
        let id = self.intent_id(charge).await?;
        let answer = self
            .post(
                &format!("/v1/payment_intents/{id}/{action}"),
                &[],
                &format!("till_{}_{action}", charge.key),
            )
            .await?;
        let intent = match intent_of(answer) {
            Ok(intent) => intent,
            Err(GatewayError::Rejected(reason))
                if reason.contains("payment_intent_unexpected_state") =>
            {
                self.retrieve(&id).await?
            }
            Err(err) => return Err(err),
        };
        Ok(payment_of(&intent))
    }
}

/// The PaymentIntent events whose object says what became of the payment.
const OUTCOME_EVENTS: &[&str] = &[
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
];

/// A PaymentIntent from an answer: 200, or a 402 decline that carries the intent.
fn intent_of(answer: Answer) -> Result<PaymentIntent, GatewayError> {
    if (200..300).contains(&answer.status) {
        return serde_json::from_value(answer.body)
            .map_err(|e| GatewayError::Unavailable(format!("unreadable PaymentIntent: {e}")));
    }
    let envelope: Option<ErrorEnvelope> = serde_json::from_value(answer.body.clone()).ok();
    if let Some(mut intent) = envelope
        .as_ref()
        .and_then(|e| e.error.payment_intent.clone())
    {
        if intent.last_payment_error.is_none() {
            intent.last_payment_error = envelope.map(|e| e.error);
        }
        return Ok(*intent);
    }
    let code = envelope
        .as_ref()
        .and_then(|e| e.error.code.clone())
        .unwrap_or_default();
    let message = envelope.and_then(|e| e.error.message).unwrap_or_default();
    Err(GatewayError::Rejected(format!(
        "stripe {}: {code} {message}",
        answer.status
    )))
}

/// A PaymentIntent (with its `latest_charge` expanded) as a reconciliation record.
fn record_of(object: &Value) -> Option<GatewayRecord> {
    let intent = serde_json::from_value::<PaymentIntent>(object.clone()).ok()?;
    Some(GatewayRecord {
        key: intent.metadata.get(METADATA_KEY).cloned(),
        outcome: wire::outcome(&intent),
        gateway_ref: intent.id.clone(),
        amount_minor: intent.amount,
        refunded_minor: object["latest_charge"]["amount_refunded"]
            .as_i64()
            .unwrap_or(0),
        currency: intent.currency.to_uppercase(),
        created_secs: intent.created,
    })
}

fn payment_of(intent: &PaymentIntent) -> GatewayPayment {
    GatewayPayment {
        gateway_ref: intent.id.clone(),
        outcome: wire::outcome(intent),
    }
}

impl Gateway for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), GatewayError>> {
        Box::pin(async move {
            let url = self.url("/v1/payment_intents?limit=1");
            let answer = retry::send(|| self.http.get(&url).bearer_auth(&self.secret_key)).await?;
            match answer.status {
                200 => Ok(()),
                401 => Err(GatewayError::Rejected(
                    "401: the secret key was refused (TILL_STRIPE_SECRET_KEY)".into(),
                )),
                status => Err(GatewayError::Rejected(format!("{status} {}", answer.body))),
            }
        })
    }

    fn check_source(&self, method: Method, source: &str) -> Result<(), String> {
        let token = source.starts_with("pm_") || source.starts_with("tok_");
        let sane = source.len() <= 255
            && source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        match method {
            Method::Card if token && sane => Ok(()),
            Method::Card => {
                Err("a Stripe card source is a PaymentMethod id such as pm_card_visa".into())
            }
            Method::Upi | Method::Wallet => Err(format!(
                "Stripe takes card payments here, not {}",
                method.as_str()
            )),
        }
    }

    fn create<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(async move { Ok(payment_of(&self.create_intent(charge).await?)) })
    }

    fn list<'a>(
        &'a self,
        since_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<GatewayRecord>, GatewayError>> {
        Box::pin(async move {
            let mut records = Vec::new();
            let mut after: Option<String> = None;
            for _ in 0..LIST_PAGES_MAX {
                let mut path =
                    "/v1/payment_intents?limit=100&expand[]=data.latest_charge".to_string();
                if let Some(secs) = since_secs {
                    path.push_str(&format!("&created[gte]={secs}"));
                }
                if let Some(id) = &after {
                    path.push_str(&format!("&starting_after={id}"));
                }
                let answer = self.get(&path).await?;
                if answer.status != 200 {
                    return Err(GatewayError::Rejected(format!(
                        "stripe list: {} {}",
                        answer.status, answer.body
                    )));
                }
                let page = answer.body["data"].as_array().cloned().unwrap_or_default();
                let mut older = false;
                for object in &page {
                    // A payment reconciliation cannot read is not skipped: the listing fails.
                    let record = record_of(object).ok_or_else(|| {
                        GatewayError::Unavailable(format!(
                            "unreadable PaymentIntent in listing: {object}"
                        ))
                    })?;
                    // Newest first: the rest are older than asked for.
                    if since_secs.is_some_and(|s| record.created_secs < s) {
                        older = true;
                        break;
                    }
                    records.push(record);
                }
                after = page
                    .last()
                    .and_then(|o| o["id"].as_str())
                    .map(str::to_string);
                if older || answer.body["has_more"] != true || after.is_none() {
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
        Box::pin(async move {
            // No PaymentIntent id: Stripe never answered this attempt, and recovery (which
            // repeats the create under its key) is what finds out whether it exists.
            let Some(id) = &charge.gateway_ref else {
                return Ok(None);
            };
            let url = self.url(&format!("/v1/payment_intents/{id}?expand[]=latest_charge"));
            let answer = retry::send(|| self.http.get(&url).bearer_auth(&self.secret_key)).await?;
            match answer.status {
                200 => Ok(record_of(&answer.body)),
                404 => Ok(None),
                status => Err(GatewayError::Rejected(format!(
                    "stripe retrieve: {status} {}",
                    answer.body
                ))),
            }
        })
    }

    fn capture<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(self.act(charge, "capture"))
    }

    fn cancel<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(self.act(charge, "cancel"))
    }

    fn refund<'a>(
        &'a self,
        charge: &'a Charge,
        refund_key: &'a str,
        amount_minor: i64,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            let id = self.intent_id(charge).await?;
            let form = vec![
                ("payment_intent".to_string(), id),
                ("amount".to_string(), amount_minor.to_string()),
            ];
            let answer = self
                .post("/v1/refunds", &form, &format!("till_{refund_key}"))
                .await?;
            match answer.status {
                200..=299 if answer.body["status"] != "failed" => Ok(()),
                _ => Err(GatewayError::Rejected(format!(
                    "stripe refund: {} {}",
                    answer.status, answer.body
                ))),
            }
        })
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Option<WebhookEvent>, String> {
        let header = headers
            .get("stripe-signature")
            .and_then(|h| h.to_str().ok())
            .ok_or("missing Stripe-Signature header")?;
        let verified = self
            .webhook_secrets
            .iter()
            .any(|secret| signature::verify(secret, header, body, now_secs).is_ok());
        if !verified {
            // Say why for the common cases, without revealing which secret was tried.
            return Err(self
                .webhook_secrets
                .first()
                .map(|secret| {
                    signature::verify(secret, header, body, now_secs)
                        .err()
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| "no webhook secret configured".into()));
        }
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| format!("webhook body is not a Stripe event: {e}"))?;
        // Only events that report where a PaymentIntent got to; `payment_intent.created`
        // carries it as it was at creation, which is old news by the time it arrives.
        if !OUTCOME_EVENTS.contains(&event.kind.as_str()) {
            return Ok(None);
        }
        let intent: PaymentIntent =
            serde_json::from_value::<PaymentIntent>(event.data.object.clone())
                .map_err(|e| format!("event object is not a PaymentIntent: {e}"))?;
        let Some(key) = intent.metadata.get(METADATA_KEY).cloned() else {
            return Ok(None);
        };
        Ok(Some(WebhookEvent {
            event_id: event.id,
            payment_key: key,
            payment: payment_of(&intent),
            amount_minor: intent.amount,
            currency: intent.currency.to_uppercase(),
        }))
    }
}

/// Form fields as Stripe's API reads them (`a=1&metadata[k]=v`), as flat pairs; `None` for
/// a body that is not form-encoded.
pub fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(body).ok()
}

/// The JSON body of a Stripe error, as the simulator answers it.
pub fn error_body(kind: &str, code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"type": kind, "code": code, "message": message}})
}
