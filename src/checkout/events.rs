//! Gateway webhooks after their signature checked out: deduplicated by the gateway's event
//! id, bound to the attempt they name, and only then applied. A signed event is trusted to
//! come from the gateway, not to be about the right money: it must name an attempt of the
//! gateway in the URL, the gateway's own id for it, and the attempt's amount and currency.

use crate::db::Script;
use crate::error::{Error, Result};
use crate::ids::PaymentId;
use crate::metrics::Metrics;
use crate::payments::gateway::WebhookEvent;
use crate::payments::{self, Payment, Status};
use crate::state::AppState;
use crate::timeline::{self, Kind};
use serde_json::{json, Value};

use super::pay::apply_outcome;

/// What became of a verified event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    Applied,
    /// Seen before: nothing happened again.
    Duplicate,
    /// About no attempt Till made, or not bound to it (see `mismatch`): nothing happened.
    Ignored(&'static str),
}

/// Dedupes, binds and applies one verified event of `gateway`.
pub async fn receive(state: &AppState, gateway: &str, event: &WebhookEvent) -> Result<Received> {
    let (seen, payment) = {
        let mut conn = state.db.reads.acquire().await?;
        let seen = payments::store::webhook_seen(&mut conn, gateway, &event.event_id).await?;
        let key = PaymentId::from(event.payment_key.as_str());
        (seen, payments::store::get(&mut conn, &key).await?)
    };
    // An event that names no payment of Till's belongs to no order's timeline.
    let Some(payment) = payment else {
        if seen {
            Metrics::inc(&state.metrics.webhooks_duplicate);
            return Ok(Received::Duplicate);
        }
        return Ok(Received::Ignored("no such payment"));
    };
    if seen {
        Metrics::inc(&state.metrics.webhooks_duplicate);
        note(state, gateway, event, &payment, Received::Duplicate).await?;
        return Ok(Received::Duplicate);
    }
    if let Some(reason) = mismatch(gateway, &payment, event) {
        Metrics::inc(&state.metrics.webhooks_mismatched);
        tracing::warn!(gateway, event_id = %event.event_id, payment_id = %payment.id, reason, "webhook does not match the payment it names; not applied");
        note(state, gateway, event, &payment, Received::Ignored(reason)).await?;
        return Ok(Received::Ignored(reason));
    }
    // A payment already settled as the event reports (a card's success, answered at once,
    // then announced) cannot move: statuses only go forward, so there is nothing to apply,
    // and the receipt and the dedupe record are written together (on PostgreSQL one
    // statement and one commit; on SQLite one call to the writer, two commits).
    let reported = Status::from_outcome(&event.payment.outcome);
    if payment.status == reported && !reported.in_flight() {
        let now = state.now_ms();
        let mut writes = Script::new();
        let receipt = receipt(gateway, event, &payment, Received::Applied);
        timeline::record_into(
            &mut writes,
            &payment.order_id,
            Kind::WebhookReceived,
            receipt,
            now,
        );
        payments::store::record_webhook_into(&mut writes, gateway, &event.event_id, now);
        // One write transaction: its two rows commit together (and, on SQLite, with the
        // group's other writes) instead of a commit each.
        let mut tx = state.db.write().await?;
        writes.run(&mut tx).await?;
        tx.commit().await?;
        Metrics::inc(&state.metrics.webhooks_received);
        return Ok(Received::Applied);
    }
    // Written before its effect, so the order's timeline shows the event before what it
    // caused; an effect that fails is asked for again by the gateway's retry, a new receipt.
    note(state, gateway, event, &payment, Received::Applied).await?;
    // The effect first, then the dedupe record: a crash between them replays an effect that
    // is idempotent anyway, while the other order could lose the event.
    match apply_outcome(state, &payment.id, &event.payment).await {
        Ok(()) | Err(Error::NotFound(_)) => {}
        Err(err) => return Err(err),
    }
    let mut tx = state.db.write().await?;
    payments::store::record_webhook(&mut tx, gateway, &event.event_id, state.now_ms()).await?;
    tx.commit().await?;
    Metrics::inc(&state.metrics.webhooks_received);
    Ok(Received::Applied)
}

/// Writes the event's receipt to the order's timeline.
async fn note(
    state: &AppState,
    gateway: &str,
    event: &WebhookEvent,
    payment: &Payment,
    received: Received,
) -> Result<()> {
    let detail = receipt(gateway, event, payment, received);
    let mut tx = state.db.write().await?;
    let now = state.now_ms();
    timeline::record(
        &mut tx,
        &payment.order_id,
        Kind::WebhookReceived,
        &detail,
        now,
    )
    .await?;
    Ok(tx.commit().await?)
}

/// The event's receipt, as the order's timeline shows it: what the gateway reported, and
/// what Till made of it.
fn receipt(gateway: &str, event: &WebhookEvent, payment: &Payment, received: Received) -> Value {
    let (outcome, reason) = match received {
        Received::Applied => ("applied", None),
        Received::Duplicate => ("duplicate", None),
        Received::Ignored(reason) => ("ignored", Some(reason)),
    };
    let mut detail = json!({
        "gateway": gateway,
        "event_id": event.event_id,
        "payment_id": payment.id,
        "reported": super::trail::outcome_name(&event.payment.outcome),
        "outcome": outcome,
    });
    if let Some(reason) = reason {
        detail["reason"] = json!(reason);
    }
    detail
}

/// Why an event cannot be about `payment`, if it cannot.
fn mismatch(gateway: &str, payment: &Payment, event: &WebhookEvent) -> Option<&'static str> {
    let named = event.payment.gateway_ref.as_str();
    if payment.gateway != gateway {
        return Some("the payment belongs to another gateway");
    }
    if named.is_empty() {
        return Some("the event names no gateway payment");
    }
    // The gateway's id is learned from the first answer or event and never replaced.
    if payment
        .gateway_ref
        .as_deref()
        .is_some_and(|known| known != named)
    {
        return Some("the event names another gateway payment");
    }
    if event.amount_minor != payment.amount.minor
        || event.currency != payment.amount.currency.code()
    {
        return Some("the event's amount or currency is not the payment's");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::gateway::{GatewayPayment, Outcome};
    use crate::payments::{Fate, Method, Status};

    fn payment(gateway_ref: Option<&str>) -> Payment {
        Payment {
            id: "pay_1".into(),
            order_id: "ord_1".into(),
            status: Status::Processing,
            amount: crate::money::Money::new(49_900, crate::money::Currency::parse("INR").unwrap()),
            method: Method::Card,
            source: "pm_card_visa".into(),
            gateway: "stripe".into(),
            gateway_ref: gateway_ref.map(str::to_string),
            fate: Fate::Open,
        }
    }

    fn event(gateway_ref: &str, amount_minor: i64, currency: &str) -> WebhookEvent {
        WebhookEvent {
            event_id: "evt_1".into(),
            payment_key: "pay_1".into(),
            payment: GatewayPayment {
                gateway_ref: gateway_ref.into(),
                outcome: Outcome::Succeeded,
            },
            amount_minor,
            currency: currency.into(),
        }
    }

    #[test]
    fn an_event_binds_only_to_its_own_payment() {
        let check = |gateway: &str, known: Option<&str>, ev: WebhookEvent, expected: bool| {
            assert_eq!(
                mismatch(gateway, &payment(known), &ev).is_none(),
                expected,
                "{gateway} {known:?} {ev:?}"
            );
        };
        check("stripe", Some("pi_1"), event("pi_1", 49_900, "INR"), true);
        // The first event sets the gateway's id.
        check("stripe", None, event("pi_1", 49_900, "INR"), true);
        check(
            "razorpay",
            Some("pi_1"),
            event("pi_1", 49_900, "INR"),
            false,
        );
        check(
            "stripe",
            Some("pi_1"),
            event("pi_attacker", 49_900, "INR"),
            false,
        );
        check("stripe", Some("pi_1"), event("", 49_900, "INR"), false);
        check("stripe", None, event("pi_attacker", 50, "INR"), false);
        check("stripe", Some("pi_1"), event("pi_1", 49_900, "USD"), false);
    }
}
