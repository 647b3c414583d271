//! The simulator's webhook sender: completes due asynchronous payments, renders each event
//! in its protocol (the simulator's own, Stripe's or Razorpay's), signs it, and POSTs it to
//! Till, retried with backoff until Till answers 2xx. Fault knobs may lose, repeat or hold
//! back an event. No database connection is held during a POST.

use rand::Rng;
use serde_json::{json, Value};
use sqlx::Row;

use super::faults::WebhookFault;
use super::{
    razorpay, stripe, Simulator, DELIVERY_ATTEMPTS_MAX, DELIVERY_BACKOFF_BASE_MS,
    DELIVERY_BACKOFF_CAP_MS, DELIVERY_BATCH, SIGNATURE_HEADER,
};
use crate::support::{hmac_hex, sign, system_now_ms};
use crate::wire::STRIPE_API_VERSION as API_VERSION;

/// What became of a due event in a pass.
enum Sent {
    /// Till took it.
    Delivered,
    /// Nothing to send (its payment moved on, or it was given up on): no more sending.
    Nothing,
    /// Till did not take it: due again later.
    Later,
}

/// An event due for delivery, with what rendering it needs of its payment.
struct Due {
    event_id: String,
    payment_id: String,
    outcome: String,
    failure_code: Option<String>,
    attempts: i64,
    object: Option<String>,
    idem_key: String,
    /// The payment's status when the event was found due.
    status: String,
    protocol: String,
    amount: i64,
    currency: String,
}

impl Simulator {
    /// How many webhooks are due and not yet delivered: a run has settled only at zero.
    pub async fn due_webhooks(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM sim_events WHERE delivered_at IS NULL AND deliver_at <= $1",
        )
        .bind(self.inner.clock.now_ms())
        .fetch_one(&self.inner.pool)
        .await
    }

    /// One pass of the webhook sender: completes due asynchronous payments and POSTs their
    /// events. Returns how many were delivered. No connection is held during a POST. Each
    /// payment's events go in the order they fell due, one after another; different
    /// payments' go at once, so one slow answer from Till holds up no other payment.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let now = self.inner.clock.now_ms();
        let due = sqlx::query(
            "SELECT e.id, e.payment_id, e.outcome, e.failure_code, e.attempts, e.object, p.idem_key, p.status, p.protocol, p.amount, p.currency
             FROM sim_events e JOIN sim_payments p ON p.id = e.payment_id
             WHERE e.delivered_at IS NULL AND e.deliver_at <= $1 ORDER BY e.deliver_at LIMIT $2",
        )
        .bind(now)
        .bind(DELIVERY_BATCH)
        .fetch_all(&self.inner.pool)
        .await?;
        let mut by_payment: Vec<(String, Vec<Due>)> = Vec::new();
        for row in due {
            let event = Due {
                event_id: row.get("id"),
                payment_id: row.get("payment_id"),
                outcome: row.get("outcome"),
                failure_code: row.get("failure_code"),
                attempts: row.get("attempts"),
                object: row.get("object"),
                idem_key: row.get("idem_key"),
                status: row.get("status"),
                protocol: row.get("protocol"),
                amount: row.get("amount"),
                currency: row.get("currency"),
            };
            match by_payment
                .iter_mut()
                .find(|(id, _)| *id == event.payment_id)
            {
                Some((_, events)) => events.push(event),
                None => by_payment.push((event.payment_id.clone(), vec![event])),
            }
        }
        let mut sending = tokio::task::JoinSet::new();
        for (_, events) in by_payment {
            let sim = self.clone();
            sending.spawn(async move {
                let mut delivered = 0;
                let mut done = Vec::new();
                for event in events {
                    let event_id = event.event_id.clone();
                    match sim.deliver(event, now).await {
                        Ok(Sent::Delivered) => {
                            delivered += 1;
                            done.push(event_id);
                        }
                        Ok(Sent::Nothing) => done.push(event_id),
                        Ok(Sent::Later) => {}
                        Err(err) => return (delivered, done, Some(err)),
                    }
                }
                (delivered, done, None)
            });
        }
        let mut delivered = 0;
        let mut done = Vec::new();
        let mut failed = None;
        while let Some(sent) = sending.join_next().await {
            match sent {
                Ok((n, ids, err)) => {
                    delivered += n;
                    done.extend(ids);
                    failed = failed.or(err);
                }
                Err(err) => failed = failed.or(Some(err.into())),
            }
        }
        // The pass's events that need no more sending, marked in one statement. Should the
        // process die before it, they are sent again: Till dedupes by event id.
        self.mark_delivered(&done, now).await?;
        failed.map_or(Ok(delivered), Err)
    }

    /// Renders, signs and POSTs one due event.
    async fn deliver(&self, due: Due, now: i64) -> anyhow::Result<Sent> {
        let Due {
            event_id,
            payment_id,
            outcome,
            failure_code,
            attempts,
            object,
            idem_key,
            status,
            protocol,
            amount,
            currency,
        } = due;
        if protocol == "razorpay" {
            let Some(body) = self
                .razorpay_event(&payment_id, &outcome, failure_code, object, now)
                .await?
            else {
                return Ok(Sent::Nothing);
            };
            let signature = hmac_hex(&self.inner.razorpay_webhook_secret, body.as_bytes());
            let headers = [
                ("x-razorpay-signature", signature),
                ("x-razorpay-event-id", event_id.clone()),
            ];
            return self
                .post_or_reschedule(&event_id, attempts, "razorpay", &headers, &body, now)
                .await;
        }
        if protocol == "stripe" {
            let Some(body) = self
                .stripe_event(&event_id, &payment_id, &outcome, object, now)
                .await?
            else {
                return Ok(Sent::Nothing);
            };
            let signature = sign(
                &self.inner.stripe_webhook_secret,
                system_now_ms() / 1000,
                body.as_bytes(),
            );
            let headers = [("stripe-signature", signature)];
            return self
                .post_or_reschedule(&event_id, attempts, "stripe", &headers, &body, now)
                .await;
        }
        // The customer completes the payment now, unless it was voided meanwhile; one that
        // was past waiting when the event fell due (a card's, at once) has nothing to do.
        let mut conn = self.inner.pool.acquire().await?;
        if matches!(status.as_str(), "processing" | "requires_action") {
            sqlx::query(
                "UPDATE sim_payments SET status = $1, failure_code = $2, updated_at = $3
                 WHERE id = $4 AND status IN ('processing', 'requires_action')",
            )
            .bind(&outcome)
            .bind(&failure_code)
            .bind(now)
            .bind(&payment_id)
            .execute(&mut *conn)
            .await?;
        }
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM sim_payments WHERE id = $1")
                .bind(&payment_id)
                .fetch_optional(&mut *conn)
                .await?;
        drop(conn);
        if status.as_deref() != Some(outcome.as_str()) {
            return Ok(Sent::Nothing);
        }
        let body = json!({
            "id": event_id,
            "type": format!("payment.{outcome}"),
            "created": now / 1000,
            "data": {"id": payment_id, "key": idem_key, "status": outcome, "failure_code": failure_code,
                     "amount": amount, "currency": currency},
        })
        .to_string();
        let signature = sign(&self.inner.secret, system_now_ms() / 1000, body.as_bytes());
        let headers = [(SIGNATURE_HEADER, signature)];
        self.post_or_reschedule(&event_id, attempts, "sim", &headers, &body, now)
            .await
    }

    /// POSTs a rendered event: delivered when Till took it, else tried again later.
    async fn post_or_reschedule(
        &self,
        event_id: &str,
        attempts: i64,
        gateway: &str,
        headers: &[(&str, String)],
        body: &str,
        now: i64,
    ) -> anyhow::Result<Sent> {
        if self.post_webhook(gateway, headers, body).await {
            Ok(Sent::Delivered)
        } else {
            self.reschedule(event_id, attempts, now).await
        }
    }

    /// Sends a webhook (or, when a fault knob says so, loses it or sends it twice). True when
    /// the event counts as delivered.
    async fn post_webhook(&self, gateway: &str, headers: &[(&str, String)], body: &str) -> bool {
        match self.inner.faults.webhook() {
            WebhookFault::Drop => true,
            WebhookFault::Duplicate => {
                let first = self.send_webhook(gateway, headers, body).await;
                self.send_webhook(gateway, headers, body).await || first
            }
            WebhookFault::None => self.send_webhook(gateway, headers, body).await,
        }
    }

    async fn send_webhook(&self, gateway: &str, headers: &[(&str, String)], body: &str) -> bool {
        let url = format!("{}/v1/webhooks/{gateway}", self.till_url());
        let mut request = self
            .inner
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let sent = request.send().await;
        match sent {
            Ok(resp) if resp.status().is_success() => true,
            Ok(resp) => {
                tracing::warn!(status = %resp.status(), "simulator webhook refused");
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "simulator webhook not delivered");
                false
            }
        }
    }

    /// Marks events that need no more sending (at most a pass's, `DELIVERY_BATCH`).
    async fn mark_delivered(&self, event_ids: &[String], now: i64) -> anyhow::Result<()> {
        if event_ids.is_empty() {
            return Ok(());
        }
        let list = (2..event_ids.len() + 2)
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("UPDATE sim_events SET delivered_at = $1 WHERE id IN ({list})");
        let mut query = sqlx::query(&sql).bind(now);
        for id in event_ids {
            query = query.bind(id);
        }
        query.execute(&self.inner.pool).await?;
        Ok(())
    }

    /// An event Till did not take: sent again after a backoff, or given up on (then it
    /// needs no more sending).
    async fn reschedule(&self, event_id: &str, attempts: i64, now: i64) -> anyhow::Result<Sent> {
        let attempts = attempts + 1;
        if attempts >= DELIVERY_ATTEMPTS_MAX {
            tracing::error!(event_id, "simulator gave up delivering a webhook");
            return Ok(Sent::Nothing);
        }
        let ceiling = DELIVERY_BACKOFF_CAP_MS.min(DELIVERY_BACKOFF_BASE_MS << attempts.min(20));
        let wait = rand::thread_rng().gen_range(0..=ceiling);
        sqlx::query("UPDATE sim_events SET attempts = $1, deliver_at = $2 WHERE id = $3")
            .bind(attempts)
            .bind(now + wait)
            .bind(event_id)
            .execute(&self.inner.pool)
            .await?;
        Ok(Sent::Later)
    }
}

impl Simulator {
    /// A Razorpay event's body. A refund event carries the entities it was queued with; a
    /// payment event completes a pending payment now (no-op for one already past that) and
    /// carries the payment as of that step, or nothing when the payment never got there.
    async fn razorpay_event(
        &self,
        payment_id: &str,
        outcome: &str,
        failure_code: Option<String>,
        object: Option<String>,
        now: i64,
    ) -> anyhow::Result<Option<String>> {
        let (event, payload) = match object.and_then(|o| serde_json::from_str::<Value>(&o).ok()) {
            Some(payload) => (outcome.to_string(), payload),
            None => {
                sqlx::query("UPDATE sim_payments SET status = $1, failure_code = $2, updated_at = $3 WHERE id = $4 AND status = 'created'")
                    .bind(outcome)
                    .bind(&failure_code)
                    .bind(now)
                    .bind(payment_id)
                    .execute(&self.inner.pool)
                    .await?;
                let Some(entity) = razorpay::payment(self, payment_id)
                    .await?
                    .and_then(|p| razorpay::as_of_event(p, outcome))
                else {
                    return Ok(None);
                };
                (
                    format!("payment.{outcome}"),
                    json!({"payment": {"entity": entity}}),
                )
            }
        };
        let contains: Vec<&String> = payload
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        Ok(Some(
            json!({"entity": "event", "account_id": "acc_till_sim", "event": event,
                "contains": contains, "payload": payload, "created_at": now / 1000})
            .to_string(),
        ))
    }

    /// A Stripe event's body: the object as it stood when the event was queued, under the
    /// type queued with it. An event queued without its object (the 3-D Secure page, or
    /// queued before events carried one) renders the PaymentIntent now and takes the type
    /// from the status it has now, so type and object always agree.
    async fn stripe_event(
        &self,
        event_id: &str,
        intent_id: &str,
        queued: &str,
        object: Option<String>,
        now: i64,
    ) -> anyhow::Result<Option<String>> {
        let (kind, object) = match object.and_then(|o| serde_json::from_str(&o).ok()) {
            Some(object) => (queued.to_string(), object),
            None => match stripe::intent(self, intent_id).await? {
                Some(object) => (
                    stripe::event_type(object["status"].as_str().unwrap_or_default()).to_string(),
                    object,
                ),
                None => return Ok(None),
            },
        };
        Ok(Some(
            json!({"id": event_id, "object": "event", "api_version": API_VERSION,
                "created": now / 1000, "livemode": false, "pending_webhooks": 1,
                "request": {"id": null, "idempotency_key": null}, "type": kind,
                "data": {"object": object}})
            .to_string(),
        ))
    }
}
