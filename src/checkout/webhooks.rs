//! `POST /v1/webhooks/{gateway}`, the HTTP edge of gateways' callbacks: the gateway's
//! adapter verifies the signature over the raw body and parses the event; `events` dedupes,
//! binds and applies it. (Here, not in `payments`, because applying one is the saga's work.)

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::events::{self, Received};
use crate::clock::system_now_ms;
use crate::error::{Error, Result};
use crate::http::extract::RawBody;
use crate::metrics::Metrics;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{gateway}", post(webhook))
}

/// The answer to a verified webhook: received, and what became of it.
#[derive(Serialize, ToSchema, Default)]
pub struct WebhookAck {
    /// Always true: a verified event is acknowledged whatever became of it.
    pub received: bool,
    /// Seen before: nothing happened again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub duplicate: Option<bool>,
    /// About nothing Till applies (an event type it does not use, or no attempt of Till's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ignored: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<&'static str>,
}

async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WebhookAck>> {
    let gateway = state.gateway(&name)?;
    let event = gateway
        .parse_webhook(&headers, &body, system_now_ms() / 1000)
        .map_err(|reason| {
            Metrics::inc(&state.metrics.webhooks_rejected);
            tracing::warn!(gateway = %name, %reason, "webhook rejected");
            Error::InvalidRequest(format!("webhook rejected: {reason}"))
        })?;
    let Some(event) = event else {
        return Ok(Json(WebhookAck {
            received: true,
            ignored: Some(true),
            ..WebhookAck::default()
        }));
    };
    // Answered 2xx whatever became of it: the gateway retrying a duplicate or an event Till
    // will never apply would change nothing.
    let received = WebhookAck {
        received: true,
        ..WebhookAck::default()
    };
    Ok(Json(match events::receive(&state, &name, &event).await? {
        Received::Applied => received,
        Received::Duplicate => WebhookAck {
            duplicate: Some(true),
            ..received
        },
        Received::Ignored(reason) => WebhookAck {
            ignored: Some(true),
            reason: Some(reason),
            ..received
        },
    }))
}
