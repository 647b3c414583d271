//! The simulator's Razorpay endpoints: the subset of Razorpay's API the Razorpay adapter
//! uses — orders (found again by receipt), S2S payment creation for UPI collect and intent,
//! wallets and cards, fetch, capture, refunds with `X-Refund-Idempotency` — with Razorpay's
//! paths, JSON shapes, statuses and error shapes. Served under `/sim/razorpay`. Over 400
//! lines: orders and payments share their rendering and moves (refunds are in
//! `razorpay_refunds.rs`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sqlx::Row;

use super::{plan, queue_event, razorpay_refunds, Plan, Simulator};
use crate::support::{constant_time_eq, hmac_hex, new_id, Method};
use crate::wire::UPI_INTENT_SOURCE;

/// How long a UPI intent waits for the customer's UPI app before it fails.
const UPI_INTENT_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// The Razorpay API, paths relative to its base (`/v1/...`), with Razorpay's error body for
/// unknown paths and methods.
pub fn router() -> Router<Simulator> {
    Router::new()
        .route("/v1/orders", post(create_order).get(find_orders))
        .route("/v1/orders/{id}", get(fetch_order))
        .route("/v1/orders/{id}/payments", get(order_payments))
        .route("/v1/payments", get(list_payments))
        .route("/v1/payments/create/json", post(create_payment))
        .route("/v1/payments/{id}", get(fetch_payment))
        .route("/v1/payments/{id}/capture", post(capture))
        .merge(razorpay_refunds::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
}

async fn unknown_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "BAD_REQUEST_ERROR",
        "The requested URL was not found on the server.",
    )
}

/// Page size of a Razorpay list without `count`, and its largest.
const PAGE_COUNT_DEFAULT: i64 = 10;
const PAGE_COUNT_MAX: i64 = 100;

#[derive(serde::Deserialize)]
pub(super) struct PageQuery {
    count: Option<i64>,
    skip: Option<i64>,
}

impl PageQuery {
    /// A page of one, for fetching by id.
    pub(super) fn one() -> PageQuery {
        PageQuery {
            count: Some(1),
            skip: None,
        }
    }

    /// `LIMIT` and `OFFSET` for this page.
    pub(super) fn bounds(&self) -> (i64, i64) {
        (
            self.count
                .unwrap_or(PAGE_COUNT_DEFAULT)
                .clamp(1, PAGE_COUNT_MAX),
            self.skip.unwrap_or(0).max(0),
        )
    }
}

/// Razorpay's list envelope.
pub(super) fn collection(items: Vec<Value>) -> Response {
    Json(json!({"entity": "collection", "count": items.len(), "items": items})).into_response()
}

/// `HMAC-SHA256(order_id|payment_id)` under the key secret: what Checkout hands the shop
/// and `verify_payment_signature` checks.
pub(super) fn payment_signature(sim: &Simulator, order_id: &str, payment_id: &str) -> String {
    hmac_hex(
        &sim.inner.razorpay_key_secret,
        format!("{order_id}|{payment_id}").as_bytes(),
    )
}

pub(super) fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = json!({"error": {"code": code, "description": description, "source": "business", "step": "payment_initiation", "reason": description, "metadata": {}}});
    (status, Json(body)).into_response()
}

pub(super) fn bad_request(description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "BAD_REQUEST_ERROR", description)
}

pub(super) fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "SERVER_ERROR",
        "The simulator could not complete the request",
    )
}

pub(super) fn authorized(sim: &Simulator, headers: &HeaderMap) -> bool {
    let credentials = format!(
        "{}:{}",
        sim.inner.razorpay_key_id, sim.inner.razorpay_key_secret
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| constant_time_eq(h.as_bytes(), expected.as_bytes()))
}

pub(super) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "BAD_REQUEST_ERROR",
        "Authentication failed",
    )
}

pub(super) fn json_body(body: &Bytes) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

/// Orders with how many payments were tried on them and whether one was captured.
const ORDER_SELECT: &str = "SELECT o.id, o.receipt, o.amount, o.currency, o.notes, o.created_at,
    (SELECT COUNT(*) FROM sim_payments p WHERE p.order_ref = o.id) AS attempts,
    (SELECT COUNT(*) FROM sim_payments p WHERE p.order_ref = o.id AND p.status IN ('captured', 'refunded')) AS paid
    FROM sim_rzp_orders o";

fn order_json(r: &sqlx::any::AnyRow) -> Value {
    let notes: Value = r
        .get::<Option<String>, _>("notes")
        .and_then(|n| serde_json::from_str(&n).ok())
        .filter(|n: &Value| !n.is_null())
        .unwrap_or(json!([]));
    let id: String = r.get("id");
    let receipt: String = r.get("receipt");
    let amount: i64 = r.get("amount");
    let attempts: i64 = r.get("attempts");
    let paid = r.get::<i64, _>("paid") > 0;
    let status = match (paid, attempts) {
        (true, _) => "paid",
        (false, 0) => "created",
        (false, _) => "attempted",
    };
    json!({"id": id, "entity": "order", "amount": amount,
        "amount_paid": if paid { amount } else { 0 }, "amount_due": if paid { 0 } else { amount },
        "currency": r.get::<String, _>("currency"),
        // An order created without a receipt is stored under its own id (receipts are unique).
        "receipt": (receipt != id).then_some(receipt),
        "offer_id": null, "status": status, "attempts": attempts,
        "notes": notes, "created_at": r.get::<i64, _>("created_at") / 1000})
}

/// A Razorpay payment's statuses in the order a payment passes through them.
const PAYMENT_PROGRESS: &[&str] = &["created", "authorized", "captured", "refunded"];

/// The payment as an event about `outcome` shows it, or `None` when the payment never got
/// there (a UPI intent approved before its timeout's `failed`). Razorpay sends
/// `payment.authorized` for every authorization, also when the capture came first, so an
/// event about a step the payment has since passed shows it as it was at that step.
pub(super) fn as_of_event(mut payment: Value, outcome: &str) -> Option<Value> {
    if payment["status"] == outcome {
        return Some(payment);
    }
    let rank = |s: &str| PAYMENT_PROGRESS.iter().position(|p| *p == s);
    let (Some(then), Some(now)) = (rank(outcome), payment["status"].as_str().and_then(rank)) else {
        return None;
    };
    if then > now {
        return None;
    }
    payment["status"] = json!(outcome);
    payment["captured"] = json!(outcome == "captured");
    payment["amount_refunded"] = json!(0);
    payment["refund_status"] = Value::Null;
    Some(payment)
}

/// A payment as Razorpay renders it, from the simulator's record.
pub(super) async fn payment(sim: &Simulator, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "{PAYMENT_SELECT} WHERE id = $1 AND protocol = 'razorpay'"
    ))
    .bind(id)
    .fetch_optional(&sim.inner.pool)
    .await?;
    Ok(row.map(|r| payment_json(&r)))
}

pub(super) const PAYMENT_SELECT: &str =
    "SELECT id, amount, currency, status, failure_code, method, source,
    metadata, order_ref, refunded, created_at FROM sim_payments";

pub(super) fn payment_json(r: &sqlx::any::AnyRow) -> Value {
    let status: String = r.get("status");
    let refunded: i64 = r.get("refunded");
    let method: String = r.get("method");
    let source: String = r.get("source");
    let failure: Option<String> = r.get("failure_code");
    let notes: Value = r
        .get::<Option<String>, _>("metadata")
        .and_then(|n| serde_json::from_str(&n).ok())
        .unwrap_or(json!({}));
    json!({
        "id": r.get::<String, _>("id"), "entity": "payment", "amount": r.get::<i64, _>("amount"),
        "currency": r.get::<String, _>("currency"), "status": status, "order_id": r.get::<Option<String>, _>("order_ref"),
        "method": method, "captured": matches!(status.as_str(), "captured" | "refunded"),
        "vpa": (method == "upi" && source != UPI_INTENT_SOURCE).then_some(source.clone()),
        "wallet": (method == "wallet").then_some(source),
        "amount_refunded": refunded,
        "refund_status": match refunded {
            0 => None,
            _ if status == "refunded" => Some("full"),
            _ => Some("partial"),
        },
        "error_code": failure.as_ref().map(|_| "BAD_REQUEST_ERROR"), "error_reason": failure.clone(),
        "error_description": failure.map(|f| format!("Payment failed: {f}")),
        "notes": notes, "created_at": r.get::<i64, _>("created_at") / 1000,
    })
}

async fn create_order(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let Some(body) = json_body(&body) else {
        return bad_request("The request body is not JSON");
    };
    let (Some(amount), Some(currency)) = (
        body["amount"].as_i64().filter(|a| *a >= 100),
        body["currency"].as_str(),
    ) else {
        return bad_request("amount (at least 100) and currency are required");
    };
    let id = new_id("order");
    let receipt = body["receipt"].as_str().unwrap_or(&id);
    let inserted = sqlx::query(
        "INSERT INTO sim_rzp_orders (id, receipt, amount, currency, notes, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (receipt) DO NOTHING",
    )
    .bind(&id)
    .bind(receipt)
    .bind(amount)
    .bind(currency)
    .bind(body["notes"].to_string())
    .bind(sim.inner.clock.now_ms())
    .execute(&sim.inner.pool)
    .await;
    match inserted {
        Ok(done) if done.rows_affected() == 1 => {}
        Ok(_) => return bad_request("receipt already used for another order"),
        Err(_) => return server_error(),
    }
    order_answer(&sim, &id).await
}

/// The order as Razorpay renders it, or Razorpay's answer for an unknown id.
async fn order_answer(sim: &Simulator, id: &str) -> Response {
    match sqlx::query(&format!("{ORDER_SELECT} WHERE o.id = $1"))
        .bind(id)
        .fetch_optional(&sim.inner.pool)
        .await
    {
        Ok(Some(row)) => Json(order_json(&row)).into_response(),
        Ok(None) => bad_request("The id provided does not exist"),
        Err(_) => server_error(),
    }
}

async fn fetch_order(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    order_answer(&sim, &id).await
}

#[derive(serde::Deserialize)]
struct OrderQuery {
    receipt: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn find_orders(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<OrderQuery>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let (count, skip) = q.page.bounds();
    let rows = sqlx::query(&format!(
        "{ORDER_SELECT} WHERE ($1 IS NULL OR o.receipt = $1) ORDER BY o.created_at DESC, o.id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(q.receipt)
    .bind(count)
    .bind(skip)
    .fetch_all(&sim.inner.pool)
    .await;
    match rows {
        Ok(rows) => collection(rows.iter().map(order_json).collect()),
        Err(_) => server_error(),
    }
}

async fn order_payments(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let rows = sqlx::query(&format!(
        "{PAYMENT_SELECT} WHERE order_ref = $1 AND protocol = 'razorpay' ORDER BY created_at, id"
    ))
    .bind(&order_id)
    .fetch_all(&sim.inner.pool)
    .await;
    match rows {
        Ok(rows) => collection(rows.iter().map(payment_json).collect()),
        Err(_) => server_error(),
    }
}

/// `GET /v1/payments`: newest first, `count` (1–100) a page after `skip`.
async fn list_payments(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let rows = sqlx::query(&format!(
        "{PAYMENT_SELECT} WHERE protocol = 'razorpay' ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(q.bounds().0)
    .bind(q.bounds().1)
    .fetch_all(&sim.inner.pool)
    .await;
    match rows {
        Ok(rows) => collection(rows.iter().map(payment_json).collect()),
        Err(_) => server_error(),
    }
}

/// An outcome the simulator will report later: status, failure code, when (unix ms).
type QueuedOutcome<'a> = (&'a str, Option<&'a str>, i64);

async fn create_payment(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let Some(body) = json_body(&body) else {
        return bad_request("The request body is not JSON");
    };
    let order_id = body["order_id"].as_str().unwrap_or_default().to_string();
    let order = sqlx::query("SELECT amount, currency FROM sim_rzp_orders WHERE id = $1")
        .bind(&order_id)
        .fetch_optional(&sim.inner.pool)
        .await;
    let Ok(Some(order)) = order else {
        return bad_request("The id provided does not exist");
    };
    if body["amount"].as_i64() != Some(order.get::<i64, _>("amount")) {
        return bad_request("The amount must match the order amount");
    }
    let (method, source) = match body["method"].as_str() {
        Some("upi") if body["upi"]["flow"] == "intent" => {
            (Method::Upi, UPI_INTENT_SOURCE.to_string())
        }
        Some("upi") => (
            Method::Upi,
            body["upi"]["vpa"]
                .as_str()
                .or(body["vpa"].as_str())
                .unwrap_or_default()
                .to_string(),
        ),
        Some("wallet") => (
            Method::Wallet,
            body["wallet"].as_str().unwrap_or_default().to_string(),
        ),
        Some("card") => (
            Method::Card,
            body["token"].as_str().unwrap_or_default().to_string(),
        ),
        _ => return bad_request("method must be upi, wallet or card"),
    };
    let now = sim.inner.clock.now_ms();
    // Initial status, failure, the queued outcome and when it lands.
    let (status, failure, event): (&str, Option<&str>, Option<QueuedOutcome>) = if source
        == UPI_INTENT_SOURCE
    {
        (
            "created",
            None,
            Some((
                "failed",
                Some("payment_timeout"),
                now + UPI_INTENT_TIMEOUT_MS,
            )),
        )
    } else {
        match plan(method, &source) {
            Some(Plan::SucceedNow) => ("authorized", None, Some(("authorized", None, now))),
            Some(Plan::FailNow(code)) => ("failed", Some(code), Some(("failed", Some(code), now))),
            Some(Plan::Later { succeed: true, .. }) => (
                "created",
                None,
                Some(("authorized", None, now + sim.inner.delay_ms)),
            ),
            Some(Plan::Later {
                succeed: false,
                failure_code,
            }) => (
                "created",
                None,
                Some(("failed", Some(failure_code), now + sim.inner.delay_ms)),
            ),
            Some(Plan::ThreeDSecure) | None => {
                return bad_request("The payment method or source is not supported")
            }
        }
    };
    let id = new_id("pay");
    let result = async {
        let mut tx = sim.inner.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, failure_code, created_at, updated_at,
               protocol, metadata, order_ref)
             VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $8, 'razorpay', $9, $10)",
        )
        .bind(&id)
        .bind(order.get::<i64, _>("amount"))
        .bind(order.get::<String, _>("currency"))
        .bind(method.as_str())
        .bind(&source)
        .bind(status)
        .bind(failure)
        .bind(now)
        .bind(body["notes"].to_string())
        .bind(&order_id)
        .execute(&mut *tx)
        .await?;
        if let Some((outcome, code, at)) = event {
            queue_event(&sim, &mut tx, &id, outcome, code, at).await?;
        }
        tx.commit().await
    }
    .await;
    if result.is_err() {
        return server_error();
    }
    let next = if source == UPI_INTENT_SOURCE {
        let amount = order.get::<i64, _>("amount");
        let link = format!(
            "upi://pay?pa=till.sim@razorpay&pn=Till&tr={id}&am={}.{:02}&cu=INR",
            amount / 100,
            amount % 100
        );
        json!([{"action": "intent", "url": link}])
    } else if status == "created" {
        json!([{"action": "poll", "url": format!("{}/sim/razorpay/v1/payments/{id}", sim.own_url())}])
    } else {
        json!([])
    };
    let mut answer = json!({"razorpay_payment_id": id, "next": next});
    // Authorized at once: the shop gets what Checkout would hand it, to verify.
    if status == "authorized" {
        answer["razorpay_order_id"] = json!(order_id);
        answer["razorpay_signature"] = json!(payment_signature(&sim, &order_id, &id));
    }
    Json(answer).into_response()
}

async fn fetch_payment(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    match payment(&sim, &id).await {
        Ok(Some(p)) => Json(p).into_response(),
        Ok(None) => bad_request("The id provided does not exist"),
        Err(_) => server_error(),
    }
}

async fn capture(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    // A capture names the full amount; without one nothing matches.
    let amount = json_body(&body)
        .and_then(|b| b["amount"].as_i64())
        .unwrap_or(-1);
    let result = advance(&sim, &id, "authorized", "captured", Some(amount)).await;
    match result {
        Ok(true) => match payment(&sim, &id).await {
            Ok(Some(p)) => Json(p).into_response(),
            _ => server_error(),
        },
        Ok(false) => bad_request(
            "This payment is not authorized for that amount, or has already been captured",
        ),
        Err(_) => server_error(),
    }
}

/// Moves a Razorpay payment from `from` to `to` (only for `amount`, when given) and queues
/// the event reporting it, in one transaction. Returns whether it moved.
async fn advance(
    sim: &Simulator,
    id: &str,
    from: &str,
    to: &str,
    amount: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let now = sim.inner.clock.now_ms();
    let mut tx = sim.inner.pool.begin().await?;
    let moved = sqlx::query(
        "UPDATE sim_payments SET status = $1, updated_at = $2
         WHERE id = $3 AND protocol = 'razorpay' AND status = $4 AND ($5 IS NULL OR amount = $5)",
    )
    .bind(to)
    .bind(now)
    .bind(id)
    .bind(from)
    .bind(amount)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 1 {
        queue_event(sim, &mut tx, id, to, None, now).await?;
    }
    tx.commit().await?;
    Ok(moved == 1)
}

/// The customer's UPI app pays an intent.
pub(super) async fn approve_intent(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
) -> Html<String> {
    let result = advance(&sim, &id, "created", "authorized", None).await;
    let message = match result {
        Ok(true) => {
            // What Checkout hands the shop's page after the payment, for it to verify.
            let order_id = match payment(&sim, &id).await {
                Ok(Some(p)) => p["order_id"].as_str().unwrap_or_default().to_string(),
                _ => String::new(),
            };
            let signature = payment_signature(&sim, &order_id, &id);
            format!("UPI payment approved.</p><dl><dt>razorpay_payment_id</dt><dd>{id}</dd><dt>razorpay_order_id</dt><dd>{order_id}</dd><dt>razorpay_signature</dt><dd>{signature}</dd></dl><p>")
        }
        Ok(false) => "This payment is not waiting for approval.".into(),
        Err(_) => "The simulator could not record the approval; try again.".into(),
    };
    Html(format!(
        "<!doctype html><title>Till simulator</title><p>{message}</p>"
    ))
}
