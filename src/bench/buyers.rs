//! One buyer of each scenario: what it asks Till for and the one word its checkout ended as.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Target;
use crate::ids::random_token;

/// How long a mixed-scenario buyer waits for a payment that completes by webhook (UPI,
/// wallet, 3-D Secure) before it gives up and counts as `still_pending`.
const SETTLE_WAIT_SECS: u64 = 30;

/// How often a waiting buyer looks at its order again.
const POLL_EVERY_MS: u64 = 100;

/// What one unit of work ended as.
pub fn outcome_of(result: &Result<(u16, Value), String>) -> String {
    match result {
        Ok((status, body)) if *status >= 400 => {
            format!("{status} {}", body["error"]["code"].as_str().unwrap_or("?"))
        }
        Ok((_, body)) => body["status"].as_str().unwrap_or("ok").to_string(),
        Err(_) => "transport_error".to_string(),
    }
}

/// An order for one unit of `sku`: its id, or what stopped it.
async fn create(target: &Target, sku: &str) -> Result<String, String> {
    let created = target
        .call(
            reqwest::Method::POST,
            "/v1/orders",
            json!({"items": [{"sku": sku, "qty": 1}]}),
            None,
        )
        .await;
    match &created {
        Ok((201, order)) => Ok(order["id"].as_str().unwrap_or_default().to_string()),
        _ => Err(outcome_of(&created)),
    }
}

async fn pay(
    target: &Target,
    order_id: &str,
    method: &str,
    source: &str,
) -> Result<(u16, Value), String> {
    target
        .call(
            reqwest::Method::POST,
            &format!("/v1/orders/{order_id}/payments"),
            json!({"method": method, "source": source}),
            Some(random_token(16)),
        )
        .await
}

/// One buyer: create an order for one unit and, if it was created, pay by card.
pub async fn checkout_once(target: &Target, sku: &str) -> String {
    let id = match create(target, sku).await {
        Ok(id) => id,
        Err(outcome) => return outcome,
    };
    let paid = pay(target, &id, "card", "pm_card_visa").await;
    match &paid {
        Ok((201, p)) if p["status"] == "succeeded" => "confirmed".to_string(),
        _ => format!("payment {}", outcome_of(&paid)),
    }
}

/// One request of the HTTP floor: `GET /healthz`, which reads nothing.
pub async fn floor_once(target: &Target) -> String {
    outcome_of(
        &target
            .call(reqwest::Method::GET, "/healthz", Value::Null, None)
            .await,
    )
}

/// The mix's shares, per twenty buyers: what each pays with (and whether it pays at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shopper {
    Card,
    Upi,
    UpiFails,
    Wallet,
    WalletDeclined,
    CardDeclined,
    ThreeDSecure,
    Abandons,
}

impl Shopper {
    /// Buyer `n` of the mix: 45% card, 10% UPI, 10% wallet, 10% 3-D Secure, 5% each of a
    /// declined card, a failed UPI collect, a declined wallet and a cart left to expire.
    pub fn nth(n: usize) -> Shopper {
        match n % 20 {
            0..=8 => Shopper::Card,
            9 | 10 => Shopper::Upi,
            11 => Shopper::UpiFails,
            12 | 13 => Shopper::Wallet,
            14 => Shopper::WalletDeclined,
            15 => Shopper::CardDeclined,
            16 | 17 => Shopper::ThreeDSecure,
            _ => Shopper::Abandons,
        }
    }

    fn source(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Shopper::Card => ("card", "pm_card_visa"),
            Shopper::Upi => ("upi", "success@razorpay"),
            Shopper::UpiFails => ("upi", "failure@razorpay"),
            Shopper::Wallet => ("wallet", "paytm"),
            Shopper::WalletDeclined => ("wallet", "wallet_declined"),
            Shopper::CardDeclined => ("card", "pm_card_chargeDeclined"),
            Shopper::ThreeDSecure => ("card", "pm_card_authenticationRequired"),
            Shopper::Abandons => return None,
        })
    }
}

/// One buyer of the mix. A payment that completes later is followed to its order's end
/// (finishing 3-D Secure on its page first); an abandoned cart is left pending for the
/// expiry worker, and its id returned so the run can watch it expire.
pub async fn mix_once(target: &Target, sku: &str, n: usize) -> (String, Option<String>) {
    let id = match create(target, sku).await {
        Ok(id) => id,
        Err(outcome) => return (outcome, None),
    };
    let Some((method, source)) = Shopper::nth(n).source() else {
        return ("abandoned".to_string(), Some(id));
    };
    let paid = pay(target, &id, method, source).await;
    let payment = match &paid {
        Ok((201, p)) => p.clone(),
        _ => return (format!("payment {}", outcome_of(&paid)), None),
    };
    match payment["status"].as_str() {
        Some("succeeded") => return ("confirmed".to_string(), None),
        Some("failed") => return ("declined".to_string(), None),
        Some("requires_action") => {
            let page = payment["next_action"]["redirect_url"]
                .as_str()
                .unwrap_or("");
            if let Err(e) = target.http.get(page).send().await {
                return (format!("3ds page: {e}"), None);
            }
        }
        _ => {}
    }
    (settled_status(target, &id).await, None)
}

/// `GET /v1/orders/{id}` on the target.
async fn order(target: &Target, id: &str) -> Result<(u16, Value), String> {
    target
        .call(
            reqwest::Method::GET,
            &format!("/v1/orders/{id}"),
            Value::Null,
            None,
        )
        .await
}

/// Waits for an order to leave `pending`; answers its status (`cancelled` for a payment
/// that failed), or `still_pending` when the wait runs out.
pub async fn settled_status(target: &Target, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(SETTLE_WAIT_SECS);
    while Instant::now() < deadline {
        let got = order(target, id).await;
        match &got {
            Ok((200, order)) if order["status"] != "pending" => {
                return match order["status"].as_str() {
                    Some("cancelled") => "declined".to_string(),
                    Some(other) => other.to_string(),
                    None => "?".to_string(),
                };
            }
            Ok((200, _)) => {}
            _ => return outcome_of(&got),
        }
        tokio::time::sleep(Duration::from_millis(POLL_EVERY_MS)).await;
    }
    "still_pending".to_string()
}

/// Waits (up to the hold TTL and a margin for the expiry worker) until every abandoned cart
/// has expired; answers how many did.
pub async fn watch_expiry(target: &Target, ids: &[String], hold_ttl_secs: i64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(hold_ttl_secs.max(0) as u64 + 15);
    let mut expired = 0;
    for id in ids {
        loop {
            let got = order(target, id).await;
            let status = match &got {
                Ok((200, order)) => order["status"].as_str().unwrap_or("?").to_string(),
                _ => break,
            };
            if status == "expired" {
                expired += 1;
                break;
            }
            if status != "pending" || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(POLL_EVERY_MS * 5)).await;
        }
    }
    expired
}
