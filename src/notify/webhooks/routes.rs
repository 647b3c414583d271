//! HTTP routes of merchant webhooks (API key): `/v1/webhook_endpoints` (create, list, delete,
//! the deliveries log) and `POST /v1/events/{event_id}/redeliver`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use utoipa::ToSchema;

use super::{store, Delivery, Endpoint, Filter};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::http::extract::{not_null, parse_json, parse_json_or_default, Caller, RawBody};
use crate::http::idempotency::{self, IdempotencyKey};
use crate::state::AppState;

/// Deliveries one page of the log shows: the latest.
const DELIVERIES_SHOWN: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook_endpoints", post(create).get(list))
        .route("/v1/webhook_endpoints/{endpoint_id}", delete(remove))
        .route("/v1/webhook_endpoints/{endpoint_id}/deliveries", get(log))
        .route("/v1/events/{event_id}/redeliver", post(redeliver))
}

/// A new endpoint: where to send, and which event types.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// Absolute `https://` URL (`http://` only to localhost or a loopback address), at most
    /// 2048 characters.
    #[schema(max_length = 2048, example = "https://shop.example/hooks")]
    url: String,
    /// Event types (`order.confirmed`, …), or `["*"]` for all.
    #[schema(min_items = 1, example = json!(["order.confirmed"]))]
    events: Vec<String>,
}

/// An endpoint as listed: never its secret.
#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    /// `we_…`
    id: String,
    url: String,
    /// The event types it receives, or `["*"]`.
    events: Vec<&'static str>,
    created_at: String,
}

fn endpoint_view(e: &Endpoint) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.filter.names(),
        created_at: rfc3339(e.created_at),
    }
}

/// The endpoint just created, with its signing secret: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedEndpointView {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// `whsec_…`: signs every delivery (`Till-Signature`); keep it, it is not shown again.
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    data: Vec<EndpointView>,
}

/// One try of a delivery.
#[derive(Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    attempt: i64,
    at: String,
    /// The endpoint's answer; null when there was none.
    #[schema(required = true)]
    status_code: Option<i64>,
    /// Why it did not count as delivered; null when it did.
    #[schema(required = true)]
    error: Option<String>,
    duration_ms: i64,
}

/// One event's delivery to one endpoint, with its latest attempt's outcome on top.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    /// `whd_…`
    id: String,
    /// The endpoint's id.
    endpoint: String,
    /// The event's id.
    event: String,
    /// `pending` (waiting for its next attempt), `delivered`, `failed` (given up after the
    /// retry window) or `dropped` (its endpoint was deleted).
    #[schema(pattern = "^(pending|delivered|failed|dropped)$")]
    status: &'static str,
    /// Attempts made so far.
    attempt: i64,
    /// The latest attempt's answer.
    #[schema(required = true)]
    status_code: Option<i64>,
    /// The latest attempt's error.
    #[schema(required = true)]
    error: Option<String>,
    /// When it is tried next; null unless `pending`.
    #[schema(required = true)]
    next_retry_at: Option<String>,
    created_at: String,
    attempts: Vec<AttemptView>,
}

fn delivery_view(endpoint_id: &str, d: Delivery) -> DeliveryView {
    let last = d.attempts.last();
    DeliveryView {
        endpoint: endpoint_id.to_string(),
        event: d.event_id,
        status: d.status.as_str(),
        attempt: d.attempts.len() as i64,
        status_code: last.and_then(|a| a.status_code),
        error: last.and_then(|a| a.error.clone()),
        next_retry_at: d.next_attempt_at.map(rfc3339),
        created_at: rfc3339(d.created_at),
        attempts: d
            .attempts
            .iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                at: rfc3339(a.at),
                status_code: a.status_code,
                error: a.error.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
        id: d.id,
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    data: Vec<DeliveryView>,
}

/// A redelivery: to one endpoint, or (left out) to every endpoint subscribed to the type.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverBody {
    /// `we_…`
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    endpoint: Option<String>,
}

/// The deletion of an endpoint.
#[derive(Serialize, ToSchema)]
pub struct DeletedEndpoint {
    id: String,
    /// Always true.
    deleted: bool,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let request = ("POST", "/v1/webhook_endpoints", &body[..]);
    idempotency::run(&state, &caller, key.as_deref(), request, |_| async {
        caller.require_merchant()?;
        let body: EndpointBody = parse_json(&body)?;
        super::check_url(&body.url)?;
        let filter = Filter::parse(&body.events)?;
        let mut conn = state.db.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let endpoint = super::create_endpoint(&mut tx, &body.url, filter, state.now_ms()).await?;
        tx.commit().await?;
        let created = CreatedEndpointView {
            endpoint: endpoint_view(&endpoint),
            secret: endpoint.secret,
        };
        Ok((StatusCode::CREATED, created))
    })
    .await
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<EndpointList>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    let endpoints = super::live_endpoints(&mut conn).await?;
    Ok(Json(EndpointList {
        data: endpoints.iter().map(endpoint_view).collect(),
    }))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeletedEndpoint>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    if !store::delete_endpoint(&mut tx, &id, state.now_ms()).await? {
        return Err(Error::NotFound("webhook endpoint"));
    }
    tx.commit().await?;
    Ok(Json(DeletedEndpoint { id, deleted: true }))
}

async fn log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>> {
    caller.require_merchant()?;
    let mut conn = state.db.pool.acquire().await?;
    super::endpoint(&mut conn, &id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))?;
    let log = super::deliveries(&mut conn, &id, DELIVERIES_SHOWN).await?;
    Ok(Json(DeliveryList {
        data: log.into_iter().map(|d| delivery_view(&id, d)).collect(),
    }))
}

async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Response {
    let path = format!("/v1/events/{event_id}/redeliver");
    idempotency::run(
        &state,
        &caller,
        key.as_deref(),
        ("POST", &path, &body),
        |_| async {
            caller.require_merchant()?;
            let body: RedeliverBody = parse_json_or_default(&body)?;
            let mut conn = state.db.pool.acquire().await?;
            let event = crate::notify::get(&mut conn, &event_id)
                .await?
                .ok_or(Error::NotFound("event"))?;
            let mut tx = conn.begin().await?;
            let queued =
                super::redeliver(&mut tx, &event, body.endpoint.as_deref(), state.now_ms()).await?;
            tx.commit().await?;
            let data = queued
                .into_iter()
                .map(|(endpoint, d)| delivery_view(&endpoint, d))
                .collect();
            Ok((StatusCode::ACCEPTED, DeliveryList { data }))
        },
    )
    .await
}
