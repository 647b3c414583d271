//! The simulator's own protocol: its payments and their HTTP API (`/sim/till/v1/…`), the
//! only way Till reaches it (its `sim` adapter, inside Till's server or at a `till
//! gateway-sim`), exactly as it reaches Stripe and Razorpay: a create is idempotent by
//! Till's key, a cancel of a key never seen leaves a tombstone, a refund is idempotent by
//! its own key. Outcomes follow `plan`, the docs/api.md table.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::{plan, queue_event, Plan, Simulator};
use crate::support::{constant_time_eq, new_id, Method};

/// The columns of a payment of this protocol as its API shows it.
const RECORD_SELECT: &str =
    "SELECT id, idem_key, status, failure_code, amount, refunded, currency, created_at FROM sim_payments";

/// A payment of the simulator's own protocol as its API receives it.
struct Charge {
    key: String,
    amount_minor: i64,
    currency: String,
    method: Method,
    source: String,
}

/// Why a call of the own protocol did not happen: refused (4xx) or storage failed (5xx).
enum SimError {
    Rejected(String),
    Unavailable(String),
}

impl Simulator {
    /// Creates a payment of the own protocol, idempotent by Till's key, and returns its
    /// record as it stands: created, written and read back in one transaction, so the
    /// simulator's one connection is taken once. A key already seen answers with its
    /// payment, whatever this call asks for.
    async fn create_inner(&self, charge: &Charge) -> Result<Value, SimError> {
        let Some(plan) = plan(charge.method, &charge.source) else {
            return match self.record(&charge.key).await.map_err(unavailable)? {
                Some(record) => Ok(record),
                None => Err(SimError::Rejected("unknown source".into())),
            };
        };
        let (status, failure_code, event) = match &plan {
            Plan::SucceedNow => ("succeeded", None, Some(("succeeded", None, 0))),
            Plan::FailNow(code) => ("failed", Some(*code), Some(("failed", Some(*code), 0))),
            Plan::ThreeDSecure => ("requires_action", None, None),
            Plan::Later { succeed: true, .. } => (
                "processing",
                None,
                Some(("succeeded", None, self.inner.delay_ms)),
            ),
            Plan::Later {
                succeed: false,
                failure_code,
            } => (
                "processing",
                None,
                Some(("failed", Some(*failure_code), self.inner.delay_ms)),
            ),
        };
        let now = self.inner.clock.now_ms();
        let id = new_id("simpay");
        let mut tx = self.inner.pool.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, failure_code, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (idem_key) DO NOTHING",
        )
        .bind(&id)
        .bind(&charge.key)
        .bind(charge.amount_minor)
        .bind(&charge.currency)
        .bind(charge.method.as_str())
        .bind(&charge.source)
        .bind(status)
        .bind(failure_code)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if inserted == 1 {
            if let Some((outcome, code, delay_ms)) = event {
                queue_event(self, &mut tx, &id, outcome, code, now + delay_ms)
                    .await
                    .map_err(unavailable)?;
            }
        }
        let record = record_by_key(self, &mut tx, &charge.key)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| SimError::Unavailable("the payment just written is gone".into()))?;
        tx.commit().await.map_err(unavailable)?;
        Ok(record)
    }

    /// The payment of `key` as the API shows it, if there is one.
    async fn record(&self, key: &str) -> Result<Option<Value>, sqlx::Error> {
        let mut conn = self.inner.pool.acquire().await?;
        record_by_key(self, &mut conn, key).await
    }

    /// Voids a payment that has not completed. A key the simulator has never seen (Till's
    /// create is still on its way, or never left) gets a tombstone, a `canceled` record under
    /// that key, so a create that arrives later answers `canceled` and takes no money.
    async fn cancel_inner(&self, charge: &Charge) -> Result<(), SimError> {
        let now = self.inner.clock.now_ms();
        sqlx::query(
            "INSERT INTO sim_payments (id, idem_key, amount, currency, method, source, status, failure_code, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'canceled', NULL, $7, $7) ON CONFLICT (idem_key) DO NOTHING",
        )
        .bind(new_id("simpay"))
        .bind(&charge.key)
        .bind(charge.amount_minor)
        .bind(&charge.currency)
        .bind(charge.method.as_str())
        .bind(&charge.source)
        .bind(now)
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        sqlx::query(
            "UPDATE sim_payments SET status = 'canceled', updated_at = $1
             WHERE idem_key = $2 AND status IN ('processing', 'requires_action')",
        )
        .bind(now)
        .bind(&charge.key)
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn refund_inner(
        &self,
        key: &str,
        refund_key: &str,
        amount_minor: i64,
    ) -> Result<(), SimError> {
        let mut tx = self.inner.pool.begin().await.map_err(unavailable)?;
        let seen: Option<String> =
            sqlx::query_scalar("SELECT idem_key FROM sim_refunds WHERE idem_key = $1")
                .bind(refund_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if seen.is_some() {
            return Ok(());
        }
        let now = self.inner.clock.now_ms();
        let done = sqlx::query(
            "UPDATE sim_payments SET refunded = refunded + $1, updated_at = $2
             WHERE idem_key = $3 AND status IN ('succeeded', 'captured') AND refunded + $1 <= amount",
        )
        .bind(amount_minor)
        .bind(now)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if done == 0 {
            return Err(SimError::Rejected(
                "payment is not refundable for that amount".into(),
            ));
        }
        sqlx::query("INSERT INTO sim_refunds (idem_key, payment_id, amount, created_at) VALUES ($1, $2, $3, $4)")
            .bind(refund_key)
            .bind(key)
            .bind(amount_minor)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }
}

fn unavailable(err: sqlx::Error) -> SimError {
    SimError::Unavailable(err.to_string())
}

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

/// The payment of `key` as the API shows it, read on `conn`.
async fn record_by_key(
    sim: &Simulator,
    conn: &mut sqlx::AnyConnection,
    key: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let row = sqlx::query(&format!("{RECORD_SELECT} WHERE idem_key = $1"))
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| record_json(sim, &r)))
}

async fn by_key(sim: &Simulator, key: &str) -> Response {
    match sim.record(key).await {
        Ok(Some(record)) => Json(record).into_response(),
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
        Ok(record) => Json(record).into_response(),
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
