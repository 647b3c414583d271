//! `POST /v1/webhooks/{gateway}`: gateways' callbacks, verified over the raw body and
//! deduplicated by the gateway's event id.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::checkout::apply_outcome;
use crate::clock::system_now_ms;
use crate::error::{Error, Result};
use crate::http::extract::RawBody;
use crate::metrics::Metrics;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{gateway}", post(webhook))
}

async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>> {
    let gateway = state.gateway(&name)?;
    let event = gateway
        .parse_webhook(&headers, &body, system_now_ms() / 1000)
        .map_err(|reason| {
            Metrics::inc(&state.metrics.webhooks_rejected);
            tracing::warn!(gateway = %name, %reason, "webhook rejected");
            Error::InvalidRequest(format!("webhook rejected: {reason}"))
        })?;
    let Some(event) = event else {
        return Ok(Json(json!({"received": true, "ignored": true})));
    };
    let seen: Option<String> = sqlx::query_scalar(
        "SELECT event_id FROM webhook_events WHERE gateway = $1 AND event_id = $2",
    )
    .bind(&name)
    .bind(&event.event_id)
    .fetch_optional(&state.db.pool)
    .await?;
    if seen.is_some() {
        Metrics::inc(&state.metrics.webhooks_duplicate);
        return Ok(Json(json!({"received": true, "duplicate": true})));
    }
    // The effect first, then the dedupe record: a crash between them replays an effect that
    // is idempotent anyway, while the other order could lose the event.
    match apply_outcome(&state, &event.payment_key, &event.payment).await {
        Ok(()) | Err(Error::NotFound(_)) => {}
        Err(err) => return Err(err),
    }
    sqlx::query("INSERT INTO webhook_events (gateway, event_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(&name)
        .bind(&event.event_id)
        .bind(state.now_ms())
        .execute(&state.db.pool)
        .await?;
    Metrics::inc(&state.metrics.webhooks_received);
    Ok(Json(json!({"received": true})))
}
