//! The simulator's own protocol reached over HTTP (`TILL_GATEWAY_SIM_URL`, e.g. a `till
//! gateway-sim` of its own): the same gateway as the simulator inside Till, known only by a
//! base URL and keys, as Stripe and Razorpay are.

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::{check_own_source, outcome_of, parse_own_webhook};
use crate::payments::gateway::{
    BoxFuture, Charge, Gateway, GatewayError, GatewayPayment, GatewayRecord, WebhookEvent,
};
use crate::payments::retry::{self, Answer};
use crate::payments::Method;

#[derive(Clone)]
pub struct SimRemote {
    /// `http://host:port/sim/till`.
    base: String,
    api_key: String,
    /// Verifies its webhooks (`Till-Sim-Signature`).
    webhook_secret: String,
    http: reqwest::Client,
}

impl SimRemote {
    pub fn new(base: String, api_key: String, webhook_secret: String) -> SimRemote {
        SimRemote {
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

impl Gateway for SimRemote {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn remote(&self) -> bool {
        true
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
