//! `POST /v1/webhooks/{gateway}`, the HTTP edge of gateways' callbacks: the gateway's
//! adapter verifies the signature over the raw body and parses the event; `events` dedupes,
//! binds and applies it. (Here, not in `payments`, because applying one is the saga's work.)

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::events::{self, Received};
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
    // Answered 2xx whatever became of it: the gateway retrying a duplicate or an event Till
    // will never apply would change nothing.
    Ok(Json(match events::receive(&state, &name, &event).await? {
        Received::Applied => json!({"received": true}),
        Received::Duplicate => json!({"received": true, "duplicate": true}),
        Received::Ignored(reason) => json!({"received": true, "ignored": true, "reason": reason}),
    }))
}
