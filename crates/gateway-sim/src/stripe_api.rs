//! What every simulated Stripe endpoint shares, as Stripe does it: the secret key as Bearer
//! or HTTP Basic credential, error bodies on every route (unknown paths and methods too),
//! the `Stripe-Version` header, form parameters, and idempotency for every POST (the first
//! answer replayed with `Idempotent-Replayed: true`, 400 `idempotency_error` for the key
//! reused with another path or body, 409 while the first request is still running).

use std::future::Future;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::Value;
use sqlx::Row;

use super::Simulator;
use crate::support::{constant_time_eq, sha256_hex};
use crate::wire::{error_body, form_pairs, STRIPE_API_VERSION as API_VERSION};

/// A status and a JSON body, before it becomes a response (and is stored for replays).
pub(super) type Reply = (StatusCode, Value);

pub(super) fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Reply {
    (status, error_body(kind, code, message))
}

pub(super) fn invalid(code: &str, message: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        code,
        message,
    )
}

pub(super) fn missing(kind: &str, id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "resource_missing",
        &format!("No such {kind}: '{id}'"),
    )
}

pub(super) fn storage_failed(err: sqlx::Error) -> Reply {
    tracing::warn!(error = %err, "stripe simulator storage failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "internal",
        "simulator storage failed",
    )
}

pub(super) fn reply((status, body): Reply) -> Response {
    (status, Json(body)).into_response()
}

/// Stripe takes the secret key as a Bearer token or as the user name of HTTP Basic auth
/// (`curl -u sk_test_…:`), the password ignored.
pub(super) fn authorized(sim: &Simulator, headers: &HeaderMap) -> bool {
    let key = sim.inner.stripe_secret_key.as_bytes();
    let Some(value) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return constant_time_eq(token.trim().as_bytes(), key);
    }
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let user = decoded.split(|b| *b == b':').next().unwrap_or_default();
    constant_time_eq(user, key)
}

/// Answers 401 as Stripe does when the key is wrong or missing; runs `handle` otherwise.
pub(super) async fn guarded<F: Future<Output = Response>>(
    sim: &Simulator,
    headers: &HeaderMap,
    handle: F,
) -> Response {
    if !authorized(sim, headers) {
        return reply(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided",
        ));
    }
    handle.await
}

/// Form parameters of a POST body or a query string, as flat pairs (`metadata[k]`, `expand[]`).
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(text: &[u8]) -> Option<Params> {
        form_pairs(text).map(Params)
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Whether `expand[]` names `field`.
    pub(super) fn expands(&self, field: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| (k == "expand[]" || k.starts_with("expand[")) && v == field)
    }

    /// `metadata[key]=value` pairs as a JSON object.
    pub(super) fn metadata(&self) -> Value {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((key.to_string(), Value::String(v.clone())))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// A whole number, `Ok(None)` when absent, the Stripe error when not a whole number.
    pub(super) fn integer(&self, name: &str) -> Result<Option<i64>, Reply> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                invalid(
                    "parameter_invalid_integer",
                    &format!("Invalid integer: {text}"),
                )
            }),
        }
    }

    pub(super) fn boolean(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }
}

/// Page size of a list without `limit`, and its largest, as Stripe's.
const LIST_LIMIT_DEFAULT: i64 = 10;
const LIST_LIMIT_MAX: i64 = 100;

/// One page of a list, newest first: `limit` (1–100) objects after `starting_after`.
pub(super) fn list_page(params: &Params, items: Vec<Value>, url: &str) -> Reply {
    let limit = match params.integer("limit") {
        Ok(limit) => limit.unwrap_or(LIST_LIMIT_DEFAULT),
        Err(err) => return err,
    };
    if !(1..=LIST_LIMIT_MAX).contains(&limit) {
        return invalid(
            "parameter_invalid_integer",
            "limit must be between 1 and 100",
        );
    }
    let start = match params.get("starting_after") {
        Some(after) => items
            .iter()
            .position(|o| o["id"] == after)
            .map_or(items.len(), |i| i + 1),
        None => 0,
    };
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(limit as usize).collect();
    let has_more = total > start + page.len();
    (
        StatusCode::OK,
        serde_json::json!({"object": "list", "data": page, "has_more": has_more, "url": url}),
    )
}

/// The query string's parameters, or Stripe's error for one that does not parse.
pub(super) fn query_params(query: Option<String>) -> Result<Params, Reply> {
    Params::parse(query.unwrap_or_default().as_bytes())
        .ok_or_else(|| invalid("parameter_invalid", "Invalid query string"))
}

/// Runs one database transaction for a handler; a storage error answers 500.
macro_rules! in_tx {
    ($sim:expr, |$tx:ident| $body:expr) => {{
        let result = async {
            let mut $tx = $sim.inner.pool.begin().await?;
            let answer: $crate::stripe_api::Reply = $body;
            $tx.commit().await?;
            Ok::<_, sqlx::Error>(answer)
        }
        .await;
        result.unwrap_or_else($crate::stripe_api::storage_failed)
    }};
}
pub(super) use in_tx;

/// A Stripe POST: authenticated, run under its idempotency key (`target` is its method and
/// path), its form body parsed, the work done in one transaction.
macro_rules! form_post {
    ($sim:expr, $headers:expr, $target:expr, $body:expr, |$tx:ident, $params:ident| $work:expr) => {
        $crate::stripe_api::guarded(
            &$sim,
            &$headers,
            $crate::stripe_api::idempotent(&$sim, &$headers, $target, &$body, || async {
                match $crate::stripe_api::body_params(&$body) {
                    Ok($params) => $crate::stripe_api::in_tx!($sim, |$tx| $work),
                    Err(err) => err,
                }
            }),
        )
        .await
    };
}
pub(super) use form_post;

/// A Stripe GET: authenticated, its query parsed, the read done in one transaction.
macro_rules! query_get {
    ($sim:expr, $headers:expr, $query:expr, |$tx:ident, $params:ident| $work:expr) => {
        $crate::stripe_api::guarded(&$sim, &$headers, async {
            $crate::stripe_api::reply(match $crate::stripe_api::query_params($query) {
                Ok($params) => $crate::stripe_api::in_tx!($sim, |$tx| $work),
                Err(err) => err,
            })
        })
        .await
    };
}
pub(super) use query_get;

/// Parses a POST body, or answers Stripe's error for one that is not form-encoded.
pub(super) fn body_params(body: &Bytes) -> Result<Params, Reply> {
    Params::parse(body).ok_or_else(|| invalid("parameter_invalid", "Invalid form body"))
}

/// Runs a POST under its `Idempotency-Key`, as Stripe does: the key is claimed before the
/// work starts, the answer stored with it (5xx and 409 answers are not stored, so a retry
/// redoes the work), and a request with the same key is answered from the store.
pub(super) async fn idempotent<F, Fut>(
    sim: &Simulator,
    headers: &HeaderMap,
    target: &str,
    body: &Bytes,
    run: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Reply>,
{
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
    else {
        return reply(run().await);
    };
    let mut fingerprint = target.as_bytes().to_vec();
    fingerprint.push(b'\n');
    fingerprint.extend_from_slice(body);
    let fingerprint = sha256_hex(&fingerprint);
    let pool = &sim.inner.pool;
    let claimed = sqlx::query(
        "INSERT INTO sim_stripe_requests (idem_key, fingerprint, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (idem_key) DO NOTHING",
    )
    .bind(&key)
    .bind(&fingerprint)
    .bind(sim.inner.clock.now_ms())
    .execute(pool)
    .await;
    match claimed {
        Ok(done) if done.rows_affected() == 1 => {}
        Ok(_) => return replay(sim, &key, &fingerprint).await,
        Err(err) => return reply(storage_failed(err)),
    }
    let (status, answer) = run().await;
    // Stripe keeps no answer for a request that failed on its side or met a concurrent one:
    // a retry under the key does the work.
    let kept = !(status.is_server_error() || status == StatusCode::CONFLICT);
    let stored = if !kept {
        sqlx::query("DELETE FROM sim_stripe_requests WHERE idem_key = $1")
            .bind(&key)
            .execute(pool)
            .await
    } else {
        sqlx::query(
            "UPDATE sim_stripe_requests SET status_code = $1, body = $2 WHERE idem_key = $3",
        )
        .bind(i64::from(status.as_u16()))
        .bind(answer.to_string())
        .bind(&key)
        .execute(pool)
        .await
    };
    match stored {
        Ok(_) => reply((status, answer)),
        Err(err) => reply(storage_failed(err)),
    }
}

/// The answer to a key seen before: the stored one, or why there is none.
async fn replay(sim: &Simulator, key: &str, fingerprint: &str) -> Response {
    let row = sqlx::query(
        "SELECT fingerprint, status_code, body FROM sim_stripe_requests WHERE idem_key = $1",
    )
    .bind(key)
    .fetch_optional(&sim.inner.pool)
    .await;
    let row = match row {
        Ok(Some(row)) => row,
        // Released by a 5xx between our claim and this read: the caller may retry.
        Ok(None) => return in_progress(),
        Err(err) => return reply(storage_failed(err)),
    };
    if row.get::<String, _>("fingerprint") != fingerprint {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            "idempotency_key_reused",
            &format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
        ));
    }
    let (Some(status), Some(body)) = (
        row.get::<Option<i64>, _>("status_code"),
        row.get::<Option<String>, _>("body"),
    ) else {
        return in_progress();
    };
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut response = reply((status, body));
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

fn in_progress() -> Response {
    reply(error(
        StatusCode::CONFLICT,
        "idempotency_error",
        "idempotency_key_in_use",
        "There is currently another in-progress request using this Idempotent Key. Please try again later.",
    ))
}

/// Every answer names the API version it speaks: the caller's `Stripe-Version`, or the one
/// the simulator's shapes follow.
pub(super) async fn version_header(req: Request, next: Next) -> Response {
    let version = req
        .headers()
        .get("stripe-version")
        .cloned()
        .unwrap_or(HeaderValue::from_static(API_VERSION));
    let mut response = next.run(req).await;
    response.headers_mut().insert("stripe-version", version);
    response
}

/// Stripe's answer to a path it does not serve.
pub(super) async fn unknown_route(method: Method, uri: Uri) -> Response {
    reply(error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "resource_missing",
        &format!("Unrecognized request URL ({method}: {}).", uri.path()),
    ))
}

/// Stripe's answer to a method a path does not take.
pub(super) async fn wrong_method(method: Method, uri: Uri) -> Response {
    reply(error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        &format!("Unrecognized request method ({method}: {}).", uri.path()),
    ))
}
