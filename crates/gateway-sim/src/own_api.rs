//! The simulator's own protocol over HTTP (`/sim/till/v1/…`), the only way Till reaches it
//! (its `sim` adapter, inside Till's server or at a `till gateway-sim`), exactly as it
//! reaches Stripe and Razorpay: a create is idempotent by Till's key, a cancel of a key never
//! seen leaves a tombstone, a refund is idempotent by its own key.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::{Simulator, RECORD_SELECT};
use crate::support::{constant_time_eq, Method};
use crate::{Charge, SimError};

pub fn router(sim: &Simulator) -> Router<Simulator> {
    Router::new()
        .route("/v1/payments", post(create).get(list))
        .route("/v1/payments/{key}", get(fetch))
        .route("/v1/payments/{key}/cancel", post(cancel))
        .route("/v1/payments/{key}/refunds", post(refund))
        .route_layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            require_key,
        ))
}

/// Every call carries the simulator's API key as its bearer token.
async fn require_key(
    State(sim): State<Simulator>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if authorized(&sim, req.headers()) {
        next.run(req).await
    } else {
        error(StatusCode::UNAUTHORIZED, "bad API key")
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

fn authorized(sim: &Simulator, headers: &HeaderMap) -> bool {
    let given = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    constant_time_eq(given.as_bytes(), sim.inner.api_key.as_bytes())
}

/// A payment of this protocol as the API shows it.
fn record_json(sim: &Simulator, r: &sqlx::any::AnyRow) -> Value {
    let id: String = r.get("id");
    json!({
        "id": id, "key": r.get::<String, _>("idem_key"), "status": r.get::<String, _>("status"),
        "failure_code": r.get::<Option<String>, _>("failure_code"),
        "redirect_url": format!("{}/sim/3ds/{id}", sim.own_url()),
        "amount": r.get::<i64, _>("amount"), "refunded": r.get::<i64, _>("refunded"),
        "currency": r.get::<String, _>("currency"), "created": r.get::<i64, _>("created_at") / 1000,
    })
}

async fn by_key(sim: &Simulator, key: &str) -> Response {
    let row = sqlx::query(&format!("{RECORD_SELECT} WHERE idem_key = $1"))
        .bind(key)
        .fetch_optional(&sim.inner.pool)
        .await;
    match row {
        Ok(Some(r)) => Json(record_json(sim, &r)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such payment"),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulator storage failed",
        ),
    }
}

fn failed(err: SimError) -> Response {
    match err {
        SimError::Rejected(reason) => error(StatusCode::BAD_REQUEST, &reason),
        SimError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "simulator storage failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulator storage failed",
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargeBody {
    amount: i64,
    currency: String,
    method: String,
    source: String,
}

impl ChargeBody {
    fn charge(self, key: String) -> Option<Charge> {
        Some(Charge {
            key,
            amount_minor: self.amount,
            currency: self.currency,
            method: Method::parse(&self.method)?,
            source: self.source,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    key: String,
    #[serde(flatten)]
    charge: ChargeBody,
}

async fn create(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let Some(charge) = serde_json::from_slice::<CreateBody>(&body)
        .ok()
        .and_then(|b| b.charge.charge(b.key))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {key, amount, currency, method, source}",
        );
    };
    match sim.create_inner(&charge).await {
        Ok(_) => by_key(&sim, &charge.key).await,
        Err(err) => failed(err),
    }
}

async fn cancel(
    State(sim): State<Simulator>,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(charge) = serde_json::from_slice::<ChargeBody>(&body)
        .ok()
        .and_then(|b| b.charge(key.clone()))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be {amount, currency, method, source}",
        );
    };
    match sim.cancel_inner(&charge).await {
        Ok(_) => by_key(&sim, &key).await,
        Err(err) => failed(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    refund_key: String,
    amount: i64,
}

async fn refund(
    State(sim): State<Simulator>,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(refund) = serde_json::from_slice::<RefundBody>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be {refund_key, amount}");
    };
    match sim
        .refund_inner(&key, &refund.refund_key, refund.amount)
        .await
    {
        Ok(()) => Json(json!({"refunded": refund.amount})).into_response(),
        Err(err) => failed(err),
    }
}

async fn fetch(State(sim): State<Simulator>, Path(key): Path<String>) -> Response {
    by_key(&sim, &key).await
}

#[derive(Deserialize)]
struct ListQuery {
    since: Option<i64>,
}

/// Every payment of this protocol created at or after `since` (unix seconds), newest first.
async fn list(State(sim): State<Simulator>, Query(q): Query<ListQuery>) -> Response {
    match sim.own_payments(q.since.unwrap_or(0)).await {
        Ok(payments) => Json(json!({ "data": payments })).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulator storage failed",
        ),
    }
}

impl Simulator {
    /// The payments of its own protocol created at or after `since_secs`, newest first, as
    /// its API lists them (`GET /sim/till/v1/payments`): the gateway's own books.
    pub async fn own_payments(&self, since_secs: i64) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "{RECORD_SELECT} WHERE protocol = 'till' AND created_at >= $1 ORDER BY created_at DESC, id"
        ))
        .bind(since_secs.saturating_mul(1000))
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows.iter().map(|r| record_json(self, r)).collect())
    }
}
