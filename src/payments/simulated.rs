//! The adapter for the gateway simulator's own protocol (the `sim` gateway): its HTTP API
//! at `…/sim/till` (create, fetch, list, cancel, refund; a bearer key) and its webhooks
//! (`Till-Sim-Signature`). Like the Stripe and Razorpay adapters it knows only a base URL and
//! keys: the simulator Till embeds (`http://{Till's address}/sim/till`) or a `till
//! gateway-sim` elsewhere (`TILL_GATEWAY_SIM_URL`).

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::gateway::{
    BoxFuture, Charge, Gateway, GatewayError, GatewayPayment, GatewayRecord, Outcome, WebhookEvent,
};
use super::retry::{self, Answer};
use super::signature::verify;
use super::{valid_vpa, Method};

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
pub const SIGNATURE_HEADER: &str = "till-sim-signature";

/// The sources the protocol charges (docs/api.md's table): refused here, before anything is
/// written, as the simulator would refuse them.
fn check_own_source(method: Method, source: &str) -> Result<(), String> {
    let known = match method {
        Method::Card => matches!(
            source,
            "pm_card_visa"
                | "pm_card_mastercard"
                | "pm_card_chargeDeclined"
                | "pm_card_chargeDeclinedInsufficientFunds"
                | "pm_card_authenticationRequired"
        ),
        Method::Upi => valid_vpa(source),
        Method::Wallet => matches!(
            source,
            "paytm" | "phonepe" | "amazonpay" | "wallet_declined"
        ),
    };
    if known {
        return Ok(());
    }
    Err(format!(
        "the simulator cannot charge {} source {:?}",
        method.as_str(),
        source.chars().take(64).collect::<String>()
    ))
}

/// Till's outcome for a payment of the protocol; `own_url` is where its 3-D Secure page is.
fn outcome_of(status: &str, failure_code: Option<String>, own_url: &str, id: &str) -> Outcome {
    match status {
        "succeeded" => Outcome::Succeeded,
        "failed" => Outcome::Failed {
            code: failure_code.unwrap_or_else(|| "payment_failed".into()),
        },
        "canceled" => Outcome::Canceled,
        "requires_action" => Outcome::RequiresAction {
            redirect_url: format!("{own_url}/sim/3ds/{id}"),
            client_secret: None,
        },
        _ => Outcome::Processing,
    }
}

/// Verifies and parses a webhook of the protocol (`Till-Sim-Signature`).
fn parse_own_webhook(
    secret: &str,
    own_url: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Option<WebhookEvent>, String> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|h| h.to_str().ok())
        .ok_or("missing signature header")?;
    verify(secret, header, body, now_secs)?;
    let event: Value =
        serde_json::from_slice(body).map_err(|e| format!("webhook body is not JSON: {e}"))?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let data = &event["data"];
    let (
        Some(event_id),
        Some(key),
        Some(gateway_ref),
        Some(status),
        Some(amount_minor),
        Some(currency),
    ) = (
        text(&event["id"]),
        text(&data["key"]),
        text(&data["id"]),
        text(&data["status"]),
        data["amount"].as_i64(),
        text(&data["currency"]),
    )
    else {
        return Err("webhook event is missing fields".into());
    };
    let outcome = outcome_of(&status, text(&data["failure_code"]), own_url, &gateway_ref);
    Ok(Some(WebhookEvent {
        event_id,
        payment_key: key,
        payment: GatewayPayment {
            gateway_ref,
            outcome,
        },
        amount_minor,
        currency,
    }))
}

#[derive(Clone)]
pub struct Simulated {
    /// `http://host:port/sim/till`.
    base: String,
    api_key: String,
    /// Verifies its webhooks (`Till-Sim-Signature`).
    webhook_secret: String,
    http: reqwest::Client,
}

impl Simulated {
    pub fn new(base: String, api_key: String, webhook_secret: String) -> Simulated {
        Simulated {
            base: base.trim_end_matches('/').to_string(),
            api_key,
            webhook_secret,
            http: retry::client(),
        }
    }

    /// Where its pages are (the 3-D Secure challenge): the server the API is on.
    fn own_url(&self) -> &str {
        self.base.trim_end_matches("/sim/till")
    }

    async fn get(&self, path: &str) -> Result<Answer, GatewayError> {
        let url = format!("{}{path}", self.base);
        retry::send(|| self.http.get(&url).bearer_auth(&self.api_key)).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Answer, GatewayError> {
        let url = format!("{}{path}", self.base);
        retry::send(|| self.http.post(&url).bearer_auth(&self.api_key).json(body)).await
    }

    /// A payment from a 2xx answer; a definite 4xx is a rejection.
    fn payment(&self, answer: Answer) -> Result<GatewayPayment, GatewayError> {
        let record = self.record(answer)?;
        Ok(GatewayPayment {
            gateway_ref: record.gateway_ref,
            outcome: record.outcome,
        })
    }

    fn record(&self, answer: Answer) -> Result<GatewayRecord, GatewayError> {
        if !(200..300).contains(&answer.status) {
            return Err(GatewayError::Rejected(format!(
                "simulator {}: {}",
                answer.status, answer.body["error"]["message"]
            )));
        }
        self.record_of(&answer.body).ok_or_else(|| {
            GatewayError::Unavailable(format!("unreadable payment: {}", answer.body))
        })
    }

    fn record_of(&self, p: &Value) -> Option<GatewayRecord> {
        let id = p["id"].as_str()?.to_string();
        Some(GatewayRecord {
            outcome: outcome_of(
                p["status"].as_str()?,
                p["failure_code"].as_str().map(str::to_string),
                self.own_url(),
                &id,
            ),
            key: p["key"].as_str().map(str::to_string),
            amount_minor: p["amount"].as_i64()?,
            refunded_minor: p["refunded"].as_i64()?,
            currency: p["currency"].as_str()?.to_string(),
            created_secs: p["created"].as_i64()?,
            gateway_ref: id,
        })
    }
}

fn charge_body(charge: &Charge) -> Value {
    json!({"amount": charge.amount_minor, "currency": charge.currency,
           "method": charge.method.as_str(), "source": charge.source})
}

impl Gateway for Simulated {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), GatewayError>> {
        Box::pin(async move {
            let answer = self.get("/v1/payments?since=9999999999").await?;
            match answer.status {
                200 => Ok(()),
                status => Err(GatewayError::Rejected(format!("{status} {}", answer.body))),
            }
        })
    }

    fn check_source(&self, method: Method, source: &str) -> Result<(), String> {
        check_own_source(method, source)
    }

    fn create<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(async move {
            let mut body = charge_body(charge);
            body["key"] = json!(charge.key);
            self.payment(self.post("/v1/payments", &body).await?)
        })
    }

    fn capture<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        // This protocol settles in one step (`succeeded`): there is nothing held to take.
        Box::pin(
            async move { self.payment(self.get(&format!("/v1/payments/{}", charge.key)).await?) },
        )
    }

    fn cancel<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        Box::pin(async move {
            let path = format!("/v1/payments/{}/cancel", charge.key);
            self.payment(self.post(&path, &charge_body(charge)).await?)
        })
    }

    fn refund<'a>(
        &'a self,
        charge: &'a Charge,
        refund_key: &'a str,
        amount_minor: i64,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            let path = format!("/v1/payments/{}/refunds", charge.key);
            let answer = self
                .post(
                    &path,
                    &json!({"refund_key": refund_key, "amount": amount_minor}),
                )
                .await?;
            match answer.status {
                200..=299 => Ok(()),
                status => Err(GatewayError::Rejected(format!(
                    "simulator refund {status}: {}",
                    answer.body["error"]["message"]
                ))),
            }
        })
    }

    fn list<'a>(
        &'a self,
        since_secs: Option<i64>,
    ) -> BoxFuture<'a, Result<Vec<GatewayRecord>, GatewayError>> {
        Box::pin(async move {
            let answer = self
                .get(&format!("/v1/payments?since={}", since_secs.unwrap_or(0)))
                .await?;
            if answer.status != 200 {
                return Err(GatewayError::Rejected(format!(
                    "simulator list: {} {}",
                    answer.status, answer.body
                )));
            }
            answer.body["data"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    self.record_of(p).ok_or_else(|| {
                        GatewayError::Unavailable(format!("unreadable payment in listing: {p}"))
                    })
                })
                .collect()
        })
    }

    fn fetch<'a>(
        &'a self,
        charge: &'a Charge,
    ) -> BoxFuture<'a, Result<Option<GatewayRecord>, GatewayError>> {
        Box::pin(async move {
            let answer = self.get(&format!("/v1/payments/{}", charge.key)).await?;
            match answer.status {
                404 => Ok(None),
                _ => self.record(answer).map(Some),
            }
        })
    }

    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Option<WebhookEvent>, String> {
        parse_own_webhook(
            &self.webhook_secret,
            self.own_url(),
            headers,
            body,
            now_secs,
        )
    }
}
