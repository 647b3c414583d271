//! The simulator's Stripe endpoints: the subset of Stripe's API the Stripe adapter uses,
//! with Stripe's paths, form-encoded requests, field names, statuses, error shapes,
//! signatures and idempotency (replay of the first answer, 400 on a key reused with other
//! parameters, 409 while the first request is running). Served under `/sim/stripe`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sqlx::Row;

use super::{plan, queue_event, Plan, Simulator};
use crate::ids::{new_id, sha256_hex};
use crate::payments::stripe::{error_body, form_pairs};
use crate::payments::Method;

pub fn router() -> Router<Simulator> {
    Router::new()
        .route("/sim/stripe/v1/payment_intents", post(create).get(list))
        .route("/sim/stripe/v1/payment_intents/{id}", get(retrieve))
        .route("/sim/stripe/v1/payment_intents/{id}/capture", post(capture))
        .route("/sim/stripe/v1/payment_intents/{id}/cancel", post(cancel))
        .route("/sim/stripe/v1/refunds", post(refund))
}

type Reply = (StatusCode, Value);

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Reply {
    (status, error_body(kind, code, message))
}

fn reply((status, body): Reply) -> Response {
    (status, Json(body)).into_response()
}

fn authorized(sim: &Simulator, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", sim.inner.stripe_secret_key);
    headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| crate::ids::constant_time_eq(h.as_bytes(), expected.as_bytes()))
}

fn unauthorized() -> Response {
    reply(error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "api_key_invalid",
        "Invalid API Key provided",
    ))
}

/// The Stripe status a new PaymentIntent takes for a test PaymentMethod.
fn initial_status(plan: &Plan, manual: bool) -> (&'static str, Option<&'static str>) {
    match plan {
        Plan::SucceedNow if manual => ("requires_capture", None),
        Plan::SucceedNow => ("succeeded", None),
        Plan::FailNow(code) => ("requires_payment_method", Some(*code)),
        Plan::ThreeDSecure => ("requires_action", None),
        Plan::Later { .. } => ("processing", None),
    }
}

/// A PaymentIntent as Stripe renders it, from the simulator's record.
pub(super) async fn intent(sim: &Simulator, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, amount, currency, status, failure_code, capture_manual, metadata, source, refunded, created_at
         FROM sim_payments WHERE id = $1 AND protocol = 'stripe'",
    )
    .bind(id)
    .fetch_optional(&sim.inner.db.pool)
    .await?;
    Ok(row.map(|r| intent_json(sim, &r)))
}

fn intent_json(sim: &Simulator, r: &sqlx::any::AnyRow) -> Value {
    {
        let status: String = r.get("status");
        let amount: i64 = r.get("amount");
        let id: String = r.get("id");
        let failure: Option<String> = r.get("failure_code");
        let metadata: Value = r
            .get::<Option<String>, _>("metadata")
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or(json!({}));
        let next_action = (status == "requires_action").then(|| {
            json!({"type": "redirect_to_url", "redirect_to_url": {"url": format!("{}/sim/3ds/{id}", sim.own_url()), "return_url": null}})
        });
        let last_payment_error = failure.map(|code| {
            let decline = if code == "card_declined" { "generic_decline".to_string() } else { code.clone() };
            json!({"type": "card_error", "code": "card_declined", "decline_code": decline, "message": "Your card was declined."})
        });
        json!({
            "id": id, "object": "payment_intent", "amount": amount,
            "amount_capturable": if status == "requires_capture" { amount } else { 0 },
            "amount_received": if status == "succeeded" { amount } else { 0 },
            "currency": r.get::<String, _>("currency"), "status": status,
            "capture_method": if r.get::<i64, _>("capture_manual") == 1 { "manual" } else { "automatic" },
            "payment_method": r.get::<String, _>("source"), "metadata": metadata,
            "next_action": next_action, "last_payment_error": last_payment_error,
            "latest_charge": {"id": format!("ch_{}", &id[3..]), "object": "charge", "amount_refunded": r.get::<i64, _>("refunded")},
            "created": r.get::<i64, _>("created_at") / 1000, "livemode": false,
        })
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    starting_after: Option<String>,
}

/// `GET /v1/payment_intents`: newest first, `limit` (1–100) a page, `starting_after` the
/// last id of the previous page.
async fn list(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    let rows = sqlx::query(
        "SELECT id, amount, currency, status, failure_code, capture_manual, metadata, source, refunded, created_at
         FROM sim_payments WHERE protocol = 'stripe' ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(&sim.inner.db.pool)
    .await;
    let Ok(rows) = rows else {
        return reply(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal",
            "simulator storage failed",
        ));
    };
    let start = match &q.starting_after {
        Some(after) => rows
            .iter()
            .position(|r| r.get::<String, _>("id") == *after)
            .map_or(rows.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(limit as usize)
        .map(|r| intent_json(&sim, r))
        .collect();
    let has_more = rows.len() > start + page.len();
    reply((
        StatusCode::OK,
        json!({"object": "list", "data": page, "has_more": has_more, "url": "/v1/payment_intents"}),
    ))
}

async fn create(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let Some(form) = form_pairs(&body) else {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_invalid",
            "Invalid form body",
        ));
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let key = headers
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| new_id("idk"));
    let request_hash = sha256_hex(&body);
    match create_inner(&sim, &key, &request_hash, &field, &form).await {
        Ok((reply_body, replayed)) => {
            let mut response = reply(reply_body);
            if replayed {
                response.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            response
        }
        Err(err) => {
            tracing::warn!(error = %err, "stripe simulator failed");
            reply(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal",
                "simulator storage failed",
            ))
        }
    }
}

async fn create_inner(
    sim: &Simulator,
    key: &str,
    request_hash: &str,
    field: &(dyn Fn(&str) -> Option<String> + Sync),
    form: &[(String, String)],
) -> Result<(Reply, bool), sqlx::Error> {
    let pool = &sim.inner.db.pool;
    if let Some(row) =
        sqlx::query("SELECT request_hash, first_response FROM sim_payments WHERE idem_key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?
    {
        if row.get::<Option<String>, _>("request_hash").as_deref() != Some(request_hash) {
            return Ok((error(StatusCode::BAD_REQUEST, "idempotency_error", "idempotency_key_reused",
                "Keys for idempotent requests can only be used with the same parameters they were first used with."), false));
        }
        return Ok(match row.get::<Option<String>, _>("first_response") {
            Some(stored) => (
                serde_json::from_str::<(u16, Value)>(&stored)
                    .map(|(s, b)| (StatusCode::from_u16(s).unwrap_or(StatusCode::OK), b))
                    .unwrap_or((StatusCode::OK, Value::Null)),
                true,
            ),
            None => (
                error(
                    StatusCode::CONFLICT,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "There is currently another in-progress request using this Idempotent Key.",
                ),
                false,
            ),
        });
    }
    let amount = field("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .filter(|a| *a > 0);
    let currency = field("currency")
        .filter(|c| c.len() == 3)
        .map(|c| c.to_uppercase());
    let (Some(amount), Some(currency)) = (amount, currency) else {
        return Ok((
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "parameter_missing",
                "amount and currency are required",
            ),
            false,
        ));
    };
    let source = field("payment_method").unwrap_or_default();
    let Some(plan) = plan(Method::Card, &source) else {
        return Ok((
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "resource_missing",
                &format!("No such PaymentMethod: '{source}'"),
            ),
            false,
        ));
    };
    let manual = field("capture_method").as_deref() == Some("manual");
    let (status, failure) = initial_status(&plan, manual);
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(),
                Value::String(v.clone()),
            ))
        })
        .collect();
    let id = new_id("pi");
    let now = sim.inner.clock.now_ms();
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, failure_code, created_at, updated_at,
           protocol, request_hash, capture_manual, metadata)
         VALUES ($1, $2, $3, $4, 'card', $5, $6, $7, $8, $8, 'stripe', $9, $10, $11) ON CONFLICT (idem_key) DO NOTHING",
    )
    .bind(&id)
    .bind(key)
    .bind(amount)
    .bind(&currency)
    .bind(&source)
    .bind(status)
    .bind(failure)
    .bind(now)
    .bind(request_hash)
    .bind(manual as i64)
    .bind(Value::Object(metadata).to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok((
            error(
                StatusCode::CONFLICT,
                "idempotency_error",
                "idempotency_key_in_use",
                "There is currently another in-progress request using this Idempotent Key.",
            ),
            false,
        ));
    }
    if status != "requires_action" {
        queue_event(sim, &mut tx, &id, status, failure, now).await?;
    }
    tx.commit().await?;
    let pi = intent(sim, &id).await?.unwrap_or(Value::Null);
    let answer = if failure.is_some() {
        let mut err = error(
            StatusCode::PAYMENT_REQUIRED,
            "card_error",
            "card_declined",
            "Your card was declined.",
        );
        err.1["error"]["decline_code"] = pi["last_payment_error"]["decline_code"].clone();
        err.1["error"]["payment_intent"] = pi;
        err
    } else {
        (StatusCode::OK, pi)
    };
    sqlx::query("UPDATE sim_payments SET first_response = $1 WHERE id = $2")
        .bind(json!([answer.0.as_u16(), answer.1]).to_string())
        .bind(&id)
        .execute(pool)
        .await?;
    Ok((answer, false))
}

async fn retrieve(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    match intent(&sim, &id).await {
        Ok(Some(pi)) => reply((StatusCode::OK, pi)),
        Ok(None) => reply(error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            &format!("No such payment_intent: '{id}'"),
        )),
        Err(_) => reply(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal",
            "simulator storage failed",
        )),
    }
}

/// Moves a PaymentIntent from one of `from` to `to`, or answers Stripe's unexpected-state error.
async fn transition(
    sim: &Simulator,
    headers: &HeaderMap,
    id: &str,
    from: &[&str],
    to: &str,
) -> Response {
    if !authorized(sim, headers) {
        return unauthorized();
    }
    let result = async {
        let now = sim.inner.clock.now_ms();
        let mut tx = sim.inner.db.pool.begin().await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT status FROM sim_payments WHERE id = $1 AND protocol = 'stripe'",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(current) = current else {
            return Ok(None);
        };
        if !from.contains(&current.as_str()) {
            return Ok(Some(Err(current)));
        }
        sqlx::query(
            "UPDATE sim_payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(to)
        .bind(now)
        .bind(id)
        .bind(&current)
        .execute(&mut *tx)
        .await?;
        queue_event(sim, &mut tx, id, to, None, now).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(Ok(())))
    }
    .await;
    match result {
        Ok(None) => reply(error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            &format!("No such payment_intent: '{id}'"),
        )),
        Ok(Some(Err(current))) => {
            let message = format!(
                "This PaymentIntent's status is {current}; the action needs one of {from:?}."
            );
            let mut err = error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "payment_intent_unexpected_state",
                &message,
            );
            err.1["error"]["payment_intent"] =
                intent(sim, id).await.ok().flatten().unwrap_or(Value::Null);
            reply(err)
        }
        Ok(Some(Ok(()))) => reply((
            StatusCode::OK,
            intent(sim, id).await.ok().flatten().unwrap_or(Value::Null),
        )),
        Err(_) => reply(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal",
            "simulator storage failed",
        )),
    }
}

async fn capture(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    transition(&sim, &headers, &id, &["requires_capture"], "succeeded").await
}

async fn cancel(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    transition(
        &sim,
        &headers,
        &id,
        &[
            "requires_payment_method",
            "requires_capture",
            "requires_confirmation",
            "requires_action",
            "processing",
        ],
        "canceled",
    )
    .await
}

async fn refund(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let form = form_pairs(&body).unwrap_or_default();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(pi_id), Some(amount)) = (
        field("payment_intent"),
        field("amount").and_then(|a| a.parse::<i64>().ok()),
    ) else {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_missing",
            "payment_intent and amount are required",
        ));
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| new_id("idk"));
    let idem_key: Option<String> = sqlx::query_scalar(
        "SELECT idem_key FROM sim_payments WHERE id = $1 AND protocol = 'stripe'",
    )
    .bind(&pi_id)
    .fetch_optional(&sim.inner.db.pool)
    .await
    .ok()
    .flatten();
    let Some(payment_key) = idem_key else {
        return reply(error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            &format!("No such payment_intent: '{pi_id}'"),
        ));
    };
    match sim.refund_inner(&payment_key, &key, amount).await {
        Ok(()) => reply((
            StatusCode::OK,
            json!({"id": format!("re_{}", &sha256_hex(key.as_bytes())[..24]), "object": "refund",
            "amount": amount, "payment_intent": pi_id, "status": "succeeded"}),
        )),
        Err(err) => reply(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "charge_already_refunded",
            &err.to_string(),
        )),
    }
}
