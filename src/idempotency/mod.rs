//! Stripe-style idempotency, below the saga: the key, a fingerprint of the request and the
//! response are stored, so a retry returns the first answer and repeats no effect. The saga
//! records what it created (`record_resource`) and its answer (`complete_in`) in its own
//! transactions; the HTTP edge (`http::idempotency::run`) claims keys and replays answers.
//!
//! A key is claimed (`running`) before the handler runs and completed with its response
//! after; 5xx responses are not kept, so a retry runs again. A claim left by a process that
//! died mid-request is taken over after `STALE_CLAIM_MS`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

mod fingerprint;
pub mod seal;
pub mod store;

pub use fingerprint::fingerprint;

use crate::db::Script;
use crate::error::{Error, Result};
use crate::state::AppState;

/// How long a stored response is replayed.
const RETENTION_MS: i64 = 24 * 3600 * 1000;

/// A claim older than this belongs to a request that will never finish (its process died);
/// no request runs anywhere near this long (the database statement timeout is 20 s).
const STALE_CLAIM_MS: i64 = 60_000;

/// Keys longer than this are refused (docs/api.md: 1–255 printable ASCII characters).
const KEY_LEN_MAX: usize = 255;

pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > KEY_LEN_MAX || !key.bytes().all(|b| (0x20..=0x7e).contains(&b))
    {
        return Err(Error::invalid(
            "Idempotency-Key must be 1-255 printable ASCII characters",
        ));
    }
    Ok(())
}

/// The key a request runs under, for a handler that stores its response in the same
/// transaction as its effect (`complete_in`): then a crash right after the commit still
/// leaves the answer to replay, instead of a claim whose retry would repeat the effect.
#[derive(Clone)]
pub struct KeyRef {
    pub scope: String,
    pub key: String,
    /// Seals secrets in the stored answer (see `seal`); derived from the credential.
    seal_key: [u8; 32],
    /// Set once a transaction that stored the answer (`complete_in`) has committed: the
    /// edge then has nothing left to store. Shared by the key's clones.
    answered: Arc<AtomicBool>,
    /// The request's fingerprint, when the key is to be claimed in the transaction of the
    /// request's effect (`record_resource`) rather than by the edge before it runs.
    unclaimed: Option<String>,
    /// Set once that transaction has committed.
    claimed: Arc<AtomicBool>,
}

/// What a request whose effect spans several transactions created first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    Payment(&'a str),
    Refund(&'a str),
}

impl Resource<'_> {
    fn kind(self) -> &'static str {
        match self {
            Resource::Payment(_) => "payment",
            Resource::Refund(_) => "refund",
        }
    }
}

/// Records, inside the caller's transaction, the payment or refund a request created: if
/// the process dies before the answer is stored, a retry answers with that resource as it
/// now stands instead of creating another. A key whose claim was left to this transaction
/// (`KeyRef::unclaimed`) is claimed here, with the resource; if another request holds or
/// held it, this is `IdempotencyKeyInUse`, and the edge answers as a claim would have.
/// Call it first in the transaction, before any row lock, and `KeyRef::mark_claimed` once
/// the transaction has committed.
pub async fn record_resource(
    conn: &mut sqlx::AnyConnection,
    key: &KeyRef,
    resource: Resource<'_>,
    now: i64,
) -> Result<()> {
    let (Resource::Payment(id) | Resource::Refund(id)) = resource;
    match &key.unclaimed {
        Some(fingerprint) if !key.is_claimed() => {
            let kind_id = (resource.kind(), id);
            if !store::insert_claim(conn, &key.scope, &key.key, fingerprint, Some(kind_id), now)
                .await?
            {
                return Err(Error::IdempotencyKeyInUse);
            }
            Ok(())
        }
        _ => store::set_resource(conn, &key.scope, &key.key, resource.kind(), id).await,
    }
}

/// The view of a resource an interrupted request created, as it now stands.
async fn resource_view(
    conn: &mut sqlx::AnyConnection,
    kind: Option<&str>,
    id: &str,
) -> Result<Option<Value>> {
    use crate::payments::{refund_view_by_id, view};
    let payment = |v: Option<crate::payments::PaymentView>| v.map(to_value).transpose();
    let refund = |v: Option<crate::payments::RefundView>| v.map(to_value).transpose();
    match kind {
        Some("payment") => payment(view(conn, id).await?),
        Some("refund") => refund(refund_view_by_id(conn, id).await?),
        Some(other) => Err(crate::error::corrupt(
            "idempotency_keys.resource_kind",
            other,
        )),
        // Recorded before kinds were (within a day of the upgrade): whichever it is.
        None => match view(conn, id).await? {
            Some(found) => payment(Some(found)),
            None => refund(refund_view_by_id(conn, id).await?),
        },
    }
}

impl std::fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRef")
            .field("scope", &self.scope)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl KeyRef {
    /// The key of a request the edge has just claimed.
    pub fn claimed(scope: &str, key: &str, seal_key: &[u8; 32]) -> KeyRef {
        KeyRef {
            scope: scope.to_string(),
            key: key.to_string(),
            seal_key: *seal_key,
            answered: Arc::new(AtomicBool::new(false)),
            unclaimed: None,
            claimed: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The key of a request that claims it in the transaction of its effect: one commit
    /// fewer than a claim of its own (see `record_resource`).
    pub fn unclaimed(scope: &str, key: &str, seal_key: &[u8; 32], fingerprint: &str) -> KeyRef {
        KeyRef {
            unclaimed: Some(fingerprint.to_string()),
            claimed: Arc::new(AtomicBool::new(false)),
            ..KeyRef::claimed(scope, key, seal_key)
        }
    }

    /// Says the transaction that claimed the key has committed.
    pub fn mark_claimed(&self) {
        self.claimed.store(true, Ordering::Release);
    }

    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Says the answer is stored: call it after the commit of the transaction in which
    /// `complete_in` stored it, never before.
    pub fn mark_answered(&self) {
        self.answered.store(true, Ordering::Release);
    }

    pub fn is_answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    /// The key a request with bearer `token` runs under in `scope` (as `run` makes it).
    pub fn new(scope: &str, key: &str, token: &str) -> KeyRef {
        KeyRef::claimed(scope, key, &seal::credential_key(token))
    }
}

/// Stores the response inside the caller's transaction. The first answer stored under a key
/// is the one kept: the edge's own `complete` afterwards changes nothing.
pub async fn complete_in(
    conn: &mut sqlx::AnyConnection,
    key: &KeyRef,
    status: StatusCode,
    body: &impl serde::Serialize,
) -> Result<()> {
    // If the caller's transaction then fails, its 5xx releases the claim anyway.
    let mut script = Script::new();
    complete_into(&mut script, key, status, body)?;
    script.run(conn).await?;
    Ok(())
}

/// `complete_in`'s write, added to `script` for the caller to run in its transaction with
/// its other writes.
pub fn complete_into(
    script: &mut Script,
    key: &KeyRef,
    status: StatusCode,
    body: &impl serde::Serialize,
) -> Result<()> {
    let body = to_value(body)?;
    let sealed = seal::seal(&body, &key.seal_key, &key.scope, &key.key).to_string();
    store::set_answer_into(script, &key.scope, &key.key, status.as_u16(), &sealed);
    Ok(())
}

pub enum Claim {
    Won,
    Replay(StatusCode, Value),
}

pub async fn claim(
    state: &AppState,
    scope: &str,
    key: &str,
    fingerprint: &str,
    seal_key: &[u8; 32],
) -> Result<Claim> {
    let now = state.now_ms();
    // Committed whatever was found: a key read from another request's writes is answered
    // once those are committed too (on SQLite they may share this one's group commit).
    let mut tx = state.db.write().await?;
    let found = find_claim(&mut tx, scope, key, fingerprint, seal_key, now).await;
    tx.commit().await?;
    match found? {
        Found::Won => Ok(Claim::Won),
        // Released (a 5xx) or purged between our insert and read: try the claim once more.
        Found::Gone => Box::pin(claim(state, scope, key, fingerprint, seal_key)).await,
        // The request that held the claim died after it had created its payment: answered
        // with that payment (the answer kept with the take-over) rather than a second one.
        Found::TakenOver(Some(view)) => Ok(Claim::Replay(StatusCode::CREATED, view)),
        Found::TakenOver(None) => Ok(Claim::Won),
        Found::Answered(status, stored) => Ok(Claim::Replay(
            status,
            seal::unseal(stored, seal_key, scope, key),
        )),
    }
}

/// What `claim` found under a key.
enum Found {
    /// The key is new: claimed.
    Won,
    /// Its claim went away between the insert and the read.
    Gone,
    /// A stale claim, taken over; with the view of what its request had created, stored as
    /// the key's answer.
    TakenOver(Option<Value>),
    /// Answered: the status and the stored (sealed) answer.
    Answered(StatusCode, Value),
}

async fn find_claim(
    conn: &mut sqlx::AnyConnection,
    scope: &str,
    key: &str,
    fingerprint: &str,
    seal_key: &[u8; 32],
    now: i64,
) -> Result<Found> {
    if store::insert_claim(conn, scope, key, fingerprint, None, now).await? {
        return Ok(Found::Won);
    }
    let Some(record) = store::get(conn, scope, key).await? else {
        return Ok(Found::Gone);
    };
    if record.fingerprint != fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    let Some((code, body)) = record.answer else {
        let stale_before = now - STALE_CLAIM_MS;
        if !store::take_over_stale(conn, scope, key, record.created_at, stale_before, now).await? {
            return Err(Error::IdempotencyKeyInUse);
        }
        let view = match record.resource {
            Some((resource_id, kind)) => resource_view(conn, kind.as_deref(), &resource_id).await?,
            None => None,
        };
        if let Some(view) = &view {
            store(conn, scope, key, seal_key, StatusCode::CREATED, view).await?;
        }
        return Ok(Found::TakenOver(view));
    };
    let status = u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| crate::error::corrupt("idempotency_keys.status_code", &code.to_string()))?;
    let stored: Value = serde_json::from_str(&body)
        .map_err(|_| crate::error::corrupt("idempotency_keys.body", "(not JSON)"))?;
    Ok(Found::Answered(status, stored))
}

pub async fn complete(
    state: &AppState,
    scope: &str,
    key: &str,
    seal_key: &[u8; 32],
    status: StatusCode,
    body: &Value,
) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    store(&mut conn, scope, key, seal_key, status, body).await
}

/// Writes the answer, its secrets sealed: the one place an answer reaches the database.
async fn store(
    conn: &mut sqlx::AnyConnection,
    scope: &str,
    key: &str,
    seal_key: &[u8; 32],
    status: StatusCode,
    body: &Value,
) -> Result<()> {
    let sealed = seal::seal(body, seal_key, scope, key).to_string();
    store::set_answer(conn, scope, key, status.as_u16(), &sealed).await
}

/// Keeps what a claimed request answered, for its replays: a success or a refusal is stored;
/// a failure of Till's own (5xx) releases the claim, so the request can be sent again.
pub async fn finish(
    state: &AppState,
    scope: &str,
    key: &str,
    seal_key: &[u8; 32],
    result: &Result<(StatusCode, Value)>,
) -> Result<()> {
    match kept_answer(result) {
        Some((status, body)) => complete(state, scope, key, seal_key, status, &body).await,
        None => release(state, scope, key).await,
    }
}

/// What of a handler's result is kept for replays: a success or a refusal; not a failure of
/// Till's own (5xx).
fn kept_answer(result: &Result<(StatusCode, Value)>) -> Option<(StatusCode, Value)> {
    match result {
        Ok((status, body)) => Some((*status, body.clone())),
        Err(err) if !err.status().is_server_error() => Some((err.status(), err.body())),
        Err(_) => None,
    }
}

/// `finish` for a key whose claim was left to the handler's transaction and never taken
/// (the handler refused, or failed, before that transaction committed): a refusal is kept,
/// claimed and answered now, unless another request has claimed the key meanwhile.
pub async fn finish_unclaimed(
    state: &AppState,
    key: &KeyRef,
    result: &Result<(StatusCode, Value)>,
) -> Result<()> {
    let Some((status, body)) = kept_answer(result) else {
        return Ok(());
    };
    let fingerprint = key.unclaimed.as_deref().unwrap_or_default();
    let mut conn = state.db.pool.acquire().await?;
    let now = state.now_ms();
    if store::insert_claim(&mut conn, &key.scope, &key.key, fingerprint, None, now).await? {
        store(
            &mut conn,
            &key.scope,
            &key.key,
            &key.seal_key,
            status,
            &body,
        )
        .await?;
    }
    Ok(())
}

pub async fn release(state: &AppState, scope: &str, key: &str) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    store::delete_running(&mut conn, scope, key).await
}

/// Keys a purge statement forgets at most: each is its own short write.
const PURGE_BATCH: i64 = 1_000;

/// Statements a worker pass purges with at most (10,000 keys: four passes a second keep up
/// with 40,000 new keys a second); a backlog, after a long stop, goes over several passes.
const PURGE_BATCHES_PER_PASS: usize = 10;

/// Forgets answered keys older than the retention window, a batch at a time, taking the
/// connection (on SQLite, the one writer) afresh for each batch.
pub async fn purge_expired(state: &AppState) -> Result<u64> {
    let before = state.now_ms() - RETENTION_MS;
    let mut purged = 0;
    for _ in 0..PURGE_BATCHES_PER_PASS {
        let mut conn = state.db.pool.acquire().await?;
        let n = store::purge_done_before(&mut conn, before, PURGE_BATCH).await?;
        purged += n;
        if n < PURGE_BATCH as u64 {
            break;
        }
    }
    Ok(purged)
}

/// A view as the JSON an answer stores.
pub fn to_value(view: impl serde::Serialize) -> Result<Value> {
    Ok(serde_json::to_value(view).map_err(anyhow::Error::from)?)
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert!(check_key("a").is_ok());
        assert!(check_key(&"k".repeat(255)).is_ok());
        assert!(check_key(&"k".repeat(256)).is_err());
        assert!(check_key("").is_err());
        assert!(check_key("tab\there").is_err());
        assert!(check_key("ключ").is_err());
    }
}
