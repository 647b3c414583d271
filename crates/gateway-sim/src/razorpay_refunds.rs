//! The simulator's Razorpay refunds: `POST /v1/payments/{id}/refund` and `POST /v1/refunds`
//! (for an `amount`, or without one the rest), replayed under `X-Refund-Idempotency`, with
//! `speed`, `notes` and `receipt`; fetch and list them, all or a payment's; the payment's
//! `amount_refunded`, `refund_status` and status `refunded` once nothing is left; and the
//! `refund.processed` event.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

use super::razorpay::{
    authorized, bad_request, collection, json_body, payment, server_error, unauthorized, PageQuery,
};
use super::Simulator;
use crate::support::{new_id, sha256_hex};

pub(super) fn router() -> Router<Simulator> {
    Router::new()
        .route("/v1/refunds", post(create).get(list))
        .route("/v1/refunds/{id}", get(fetch))
        .route("/v1/payments/{id}/refund", post(create_for_payment))
        .route("/v1/payments/{id}/refunds", get(list_for_payment))
        .route(
            "/v1/payments/{id}/refunds/{refund_id}",
            get(fetch_for_payment),
        )
}

/// The speeds Razorpay takes; the simulator processes both at once.
const SPEEDS: &[&str] = &["normal", "optimum"];

const REFUND_SELECT: &str = "SELECT r.refund_id, r.idem_key, r.payment_id, r.amount, r.notes, r.receipt, r.speed,
    r.created_at, p.currency FROM sim_refunds r JOIN sim_payments p ON p.id = r.payment_id AND p.protocol = 'razorpay'";

fn render(r: &sqlx::any::AnyRow) -> Value {
    let speed = r
        .get::<Option<String>, _>("speed")
        .unwrap_or_else(|| "normal".into());
    json!({
        "id": r.get::<Option<String>, _>("refund_id")
            .unwrap_or_else(|| format!("rfnd_{}", &sha256_hex(r.get::<String, _>("idem_key").as_bytes())[..14])),
        "entity": "refund", "amount": r.get::<i64, _>("amount"),
        "currency": r.get::<String, _>("currency"), "payment_id": r.get::<String, _>("payment_id"),
        "notes": r.get::<Option<String>, _>("notes").and_then(|n| serde_json::from_str::<Value>(&n).ok())
            .filter(|n| !n.is_null()).unwrap_or(json!([])),
        "receipt": r.get::<Option<String>, _>("receipt"), "acquirer_data": {"arn": null},
        "created_at": r.get::<i64, _>("created_at") / 1000, "batch_id": null,
        "status": "processed", "speed_processed": "normal", "speed_requested": speed,
    })
}

async fn create(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    let payment_id = json_body(&body)
        .and_then(|b| b["payment_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    refund(&sim, &headers, &payment_id, &body).await
}

async fn create_for_payment(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    refund(&sim, &headers, &id, &body).await
}

/// Refunds `amount` (the rest when absent) of a captured payment. A key seen before under
/// `X-Refund-Idempotency` answers the refund it made.
async fn refund(sim: &Simulator, headers: &HeaderMap, payment_id: &str, body: &Bytes) -> Response {
    if !authorized(sim, headers) {
        return unauthorized();
    }
    let body = if body.is_empty() {
        Some(json!({}))
    } else {
        json_body(body)
    };
    let Some(body) = body else {
        return bad_request("The request body is not JSON");
    };
    let key = headers
        .get("x-refund-idempotency")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let result = async {
        let mut tx = sim.inner.pool.begin().await?;
        let answer = refund_in(sim, &mut tx, payment_id, &body, key).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(answer)
    }
    .await;
    match result {
        Ok(Ok(refund)) => Json(refund).into_response(),
        Ok(Err(description)) => bad_request(&description),
        Err(err) => {
            tracing::warn!(error = %err, "razorpay simulator refund failed");
            server_error()
        }
    }
}

async fn refund_in(
    sim: &Simulator,
    tx: &mut AnyConnection,
    payment_id: &str,
    body: &Value,
    key: Option<String>,
) -> Result<Result<Value, String>, sqlx::Error> {
    if let Some(key) = &key {
        let seen = sqlx::query(&format!("{REFUND_SELECT} WHERE r.idem_key = $1"))
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = seen {
            return Ok(Ok(render(&row)));
        }
    }
    let row = sqlx::query(
        "SELECT amount, refunded, status FROM sim_payments WHERE id = $1 AND protocol = 'razorpay'",
    )
    .bind(payment_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Err("The id provided does not exist".into()));
    };
    let (amount_paid, refunded, status): (i64, i64, String) =
        (row.get("amount"), row.get("refunded"), row.get("status"));
    match status.as_str() {
        "captured" => {}
        "refunded" => return Ok(Err("The payment has been fully refunded already".into())),
        _ => return Ok(Err("Only captured payments can be refunded".into())),
    }
    let remaining = amount_paid - refunded;
    let amount = match &body["amount"] {
        Value::Null => remaining,
        value => match value.as_i64() {
            Some(amount) if amount >= 1 => amount,
            _ => return Ok(Err("The amount must be a positive integer in paise".into())),
        },
    };
    if amount > remaining {
        return Ok(Err(
            "The refund amount provided is greater than amount captured".into(),
        ));
    }
    let speed = body["speed"].as_str().unwrap_or("normal");
    if !SPEEDS.contains(&speed) {
        return Ok(Err("The selected speed is invalid.".into()));
    }
    let now = sim.inner.clock.now_ms();
    let moved = sqlx::query(
        "UPDATE sim_payments SET refunded = refunded + $1, updated_at = $2,
           status = CASE WHEN refunded + $1 = amount THEN 'refunded' ELSE status END
         WHERE id = $3 AND refunded = $4",
    )
    .bind(amount)
    .bind(now)
    .bind(payment_id)
    .bind(refunded)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(Err(
            "Another refund of this payment is in progress; try again".into(),
        ));
    }
    let refund_id = new_id("rfnd");
    sqlx::query(
        "INSERT INTO sim_refunds (idem_key, payment_id, amount, created_at, refund_id, protocol, notes, receipt, speed)
         VALUES ($1, $2, $3, $4, $5, 'razorpay', $6, $7, $8)",
    )
    .bind(key.unwrap_or_else(|| refund_id.clone()))
    .bind(payment_id)
    .bind(amount)
    .bind(now)
    .bind(&refund_id)
    .bind(body["notes"].to_string())
    .bind(body["receipt"].as_str())
    .bind(speed)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(&format!("{REFUND_SELECT} WHERE r.refund_id = $1"))
        .bind(&refund_id)
        .fetch_one(&mut *tx)
        .await?;
    let refund = render(&row);
    let payment = payment_in(tx, payment_id).await?;
    let payload = json!({"refund": {"entity": refund}, "payment": {"entity": payment}});
    sqlx::query(
        "INSERT INTO sim_events (id, payment_id, outcome, deliver_at, object) VALUES ($1, $2, 'refund.processed', $3, $4)",
    )
    .bind(new_id("evt"))
    .bind(payment_id)
    .bind(now)
    .bind(payload.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(Ok(refund))
}

/// The payment as it stands inside the refund's transaction.
async fn payment_in(tx: &mut AnyConnection, id: &str) -> Result<Value, sqlx::Error> {
    let row = sqlx::query(&format!(
        "{} WHERE id = $1 AND protocol = 'razorpay'",
        super::razorpay::PAYMENT_SELECT
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(super::razorpay::payment_json(&row))
}

/// A page of refunds, newest first: of one payment or all, one refund or every one.
async fn rows(
    sim: &Simulator,
    payment_id: Option<&str>,
    refund_id: Option<&str>,
    page: &PageQuery,
) -> Result<Vec<Value>, sqlx::Error> {
    let (count, skip) = page.bounds();
    let rows = sqlx::query(&format!(
        "{REFUND_SELECT} WHERE ($1 IS NULL OR r.payment_id = $1)
           AND ($2 IS NULL OR r.refund_id = $2)
         ORDER BY r.created_at DESC, r.refund_id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(payment_id)
    .bind(refund_id)
    .bind(count)
    .bind(skip)
    .fetch_all(&sim.inner.pool)
    .await?;
    Ok(rows.iter().map(render).collect())
}

async fn list(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Query(page): Query<PageQuery>,
) -> Response {
    listed(&sim, &headers, None, &page).await
}

async fn list_for_payment(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    if authorized(&sim, &headers) && matches!(payment(&sim, &id).await, Ok(None)) {
        return bad_request("The id provided does not exist");
    }
    listed(&sim, &headers, Some(&id), &page).await
}

async fn listed(
    sim: &Simulator,
    headers: &HeaderMap,
    payment_id: Option<&str>,
    page: &PageQuery,
) -> Response {
    if !authorized(sim, headers) {
        return unauthorized();
    }
    match rows(sim, payment_id, None, page).await {
        Ok(items) => collection(items),
        Err(_) => server_error(),
    }
}

async fn fetch(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    fetched(&sim, &headers, None, &id).await
}

async fn fetch_for_payment(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path((payment_id, refund_id)): Path<(String, String)>,
) -> Response {
    fetched(&sim, &headers, Some(&payment_id), &refund_id).await
}

async fn fetched(
    sim: &Simulator,
    headers: &HeaderMap,
    payment_id: Option<&str>,
    refund_id: &str,
) -> Response {
    if !authorized(sim, headers) {
        return unauthorized();
    }
    let one = PageQuery::one();
    match rows(sim, payment_id, Some(refund_id), &one).await {
        Ok(mut items) if !items.is_empty() => Json(items.remove(0)).into_response(),
        Ok(_) => bad_request("The id provided does not exist"),
        Err(_) => server_error(),
    }
}
