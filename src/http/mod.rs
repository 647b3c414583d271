//! The HTTP edge: merges every capability's router, adds the body limit, request ids, rate
//! limits and JSON error bodies, and serves the service endpoints. Only this layer and the
//! route files know wire formats.

pub mod errors;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod rate_limit;
pub mod serve;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tracing::Instrument;

use crate::error::Error;
use crate::ids::{constant_time_eq, random_token, sha256_hex};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{checkout, inventory, notify, pricing, relay, web};

/// The whole application as one router, ready to serve or to drive in tests.
pub fn app(state: AppState) -> Router {
    let mut routes = Router::new()
        .merge(inventory::routes::router())
        .merge(pricing::routes::router())
        .merge(checkout::routes::router())
        .merge(checkout::documents::routes::router())
        .merge(checkout::seed::router())
        .merge(checkout::webhooks::router())
        .merge(notify::routes::router())
        .merge(notify::webhooks::routes::router())
        .merge(web::router());
    // The simulator's endpoints and pages exist only while it takes some payments, and then
    // behind the same body limit, rate limiter and request ids as everything else.
    if let Some(sim) = &state.sim {
        routes = routes.merge(sim.router());
    }
    edge(
        routes.route("/openapi.json", get(|| async { Json(openapi::document()) })),
        state,
    )
}

/// What a worker instance (`TILL_ROLE=worker`) serves: the service endpoints and nothing of
/// the API (every other path is 404) — and the embedded simulator's routes while it takes
/// payments, since its own gateway calls go there.
pub fn service_app(state: AppState) -> Router {
    let routes = match &state.sim {
        Some(sim) => sim.router(),
        None => Router::new(),
    };
    edge(routes, state)
}

/// The service endpoints and the layers every request goes through, around `routes`.
fn edge(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { Error::NotFound("route") })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(
            (
                state.clone(),
                std::sync::Arc::new(rate_limit::RateLimiter::new(state.rate_limit_per_sec)),
            ),
            rate_limit::limit,
        ))
        .layer(middleware::from_fn(errors::json_errors))
        .layer(middleware::from_fn_with_state(
            state.read_timeout,
            serve::read_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// Gives every request an id (echoed as `request-id`, on every log line of the request)
/// and counts it.
async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = format!("req_{}", random_token(16));
    let span = tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.uri().path());
    let mut response = next.run(req).instrument(span).await;
    Metrics::inc(&state.metrics.http_requests);
    if response.status().is_server_error() {
        Metrics::inc(&state.metrics.http_5xx);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// `GET /healthz`: the process is up.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
}

/// `GET /readyz`: whether the database answers, and each remote gateway's last probe.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`; `unavailable` (503) when the database does not answer; `draining` (503) once
    /// the instance is shutting down, so a load balancer sends it nothing new.
    #[schema(value_type = String, pattern = "^(ready|unavailable|draining)$")]
    pub status: &'static str,
    /// `up` or `down`.
    #[schema(value_type = String, pattern = "^(up|down)$")]
    pub database: &'static str,
    /// Gateway name → what its last probe found.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub gateways: std::collections::BTreeMap<&'static str, String>,
    /// With `TILL_AMQP_URL`: what the last contact with RabbitMQ found, `ok` or what went
    /// wrong (events wait in the database meanwhile; not a reason to be unready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 while the database answers and the instance is not shutting down; `gateways` details
/// the last probe of each remote gateway (a gateway that is down stops its payment methods,
/// not the rest of Till).
async fn readyz(State(state): State<AppState>) -> Response {
    let gateways = state.gateway_health();
    let broker = state.amqp.as_ref().map(|b| b.health());
    if state.stopping.is_draining() {
        let database = match state.db.ping().await {
            true => "up",
            false => "down",
        };
        let draining = Readiness {
            status: "draining",
            database,
            gateways,
            broker,
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(draining)).into_response();
    }
    if state.db.ping().await {
        Json(Readiness {
            status: "ready",
            database: "up",
            gateways,
            broker,
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "unavailable",
                database: "down",
                gateways,
                broker,
            }),
        )
            .into_response()
    }
}

/// Prometheus text; with `TILL_METRICS_TOKEN` set, only for `Authorization: Bearer <token>`.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(expected) = &state.metrics_token_hash {
        let given = extract::bearer(&headers).map(|t| sha256_hex(t.as_bytes()));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
            return Error::Unauthorized.into_response();
        }
    }
    let lags = relay::lags(&state).await.unwrap_or_default();
    let (pending, failed) = relay::webhook_sender::counts(&state)
        .await
        .unwrap_or_default();
    let mail = relay::mail::counts(&state).await.unwrap_or_default();
    let text = state.metrics.render(&lags)
        + &Metrics::render_webhook_deliveries(pending, failed)
        + &crate::metrics::render_mail(&mail)
        + &crate::metrics::render_write_groups(
            state.db.write_groups(),
            state.db.writer_busy_micros(),
        );
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}
