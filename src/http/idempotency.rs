//! The HTTP edge of idempotency: the `Idempotency-Key` header, and `run`, which claims the
//! key before a handler runs, replays a stored answer (`Idempotent-Replayed: true`) and
//! stores the handler's answer after. The records themselves are `crate::idempotency`'s.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::extract::Caller;
use crate::error::{Error, Result};
use crate::idempotency::{
    check_key, claim, fingerprint, finish, finish_unclaimed, to_value, Claim, KeyRef,
};
use crate::state::AppState;

/// The `Idempotency-Key` header, checked; absent is `None`.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<IdempotencyKey> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value.to_str().map_err(|_| {
            Error::invalid("Idempotency-Key must be 1-255 printable ASCII characters")
        })?;
        check_key(key)?;
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

/// Runs `handler` at most once per (credential, key). Without a key it simply runs. Its
/// answer, a typed view, is sent as the JSON it is stored as, so a replay is the same bytes.
pub async fn run<F, Fut, B>(
    state: &AppState,
    caller: &Caller,
    key: Option<&str>,
    request: (&str, &str, &[u8]),
    handler: F,
) -> Response
where
    F: FnOnce(Option<KeyRef>) -> Fut,
    Fut: Future<Output = Result<(StatusCode, B)>>,
    B: Serialize,
{
    let Some(key) = key else {
        return respond(as_json(handler(None).await));
    };
    if let Err(err) = check_key(key) {
        return err.into_response();
    }
    let (method, path, body) = request;
    let fingerprint = fingerprint(method, path, body);
    let scope = caller.scope();
    let seal_key = caller.seal_key();
    match claim(state, &scope, key, &fingerprint, seal_key).await {
        Ok(Claim::Won) => {}
        Ok(Claim::Replay(status, body)) => {
            let mut response = (status, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return response;
        }
        Err(err) => return err.into_response(),
    }
    let key_ref = KeyRef::claimed(&scope, key, seal_key);
    let result = as_json(handler(Some(key_ref.clone())).await);
    // The handler stored its answer in the transaction of its effect, or the process died
    // (the failpoint) before the answer could be stored.
    if key_ref.is_answered() || crate::failpoint::armed(crate::failpoint::ANSWER_LOST, key) {
        return respond(result);
    }
    let stored = finish(state, &scope, key, seal_key, &result).await;
    if let Err(err) = stored {
        tracing::error!(error = %err, "could not store the idempotent response");
    }
    respond(result)
}

/// `run` for a handler that claims the key itself, in the transaction of its effect
/// (`idempotency::record_resource`; the payment request): the claim costs no commit of its
/// own. A key already taken is answered as `run` would — replayed, in use, or reused — and
/// a refusal before the handler's transaction committed is kept as `run` keeps it.
pub async fn run_claiming_in_effect<F, Fut, B>(
    state: &AppState,
    caller: &Caller,
    key: &str,
    request: (&str, &str, &[u8]),
    handler: F,
) -> Response
where
    F: Fn(Option<KeyRef>) -> Fut,
    Fut: Future<Output = Result<(StatusCode, B)>>,
    B: Serialize,
{
    if let Err(err) = check_key(key) {
        return err.into_response();
    }
    let (method, path, body) = request;
    let fingerprint = fingerprint(method, path, body);
    let key_ref = KeyRef::unclaimed(&caller.scope(), key, caller.seal_key(), &fingerprint);
    let result = as_json(handler(Some(key_ref.clone())).await);
    if matches!(result, Err(Error::IdempotencyKeyInUse)) && !key_ref.is_claimed() {
        // Another request holds or held the key: answer as a claim first would have.
        return run(state, caller, Some(key), request, handler).await;
    }
    if key_ref.is_answered() || crate::failpoint::armed(crate::failpoint::ANSWER_LOST, key) {
        return respond(result);
    }
    let stored = if key_ref.is_claimed() {
        finish(state, &caller.scope(), key, caller.seal_key(), &result).await
    } else {
        finish_unclaimed(state, &key_ref, &result).await
    };
    if let Err(err) = stored {
        tracing::error!(error = %err, "could not store the idempotent response");
    }
    respond(result)
}

fn as_json<B: Serialize>(result: Result<(StatusCode, B)>) -> Result<(StatusCode, Value)> {
    let (status, body) = result?;
    Ok((status, to_value(body)?))
}

fn respond(result: Result<(StatusCode, Value)>) -> Response {
    match result {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(err) => err.into_response(),
    }
}
