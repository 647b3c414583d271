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
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::Row;

pub mod seal;

use crate::error::{Error, Result};
use crate::ids::sha256_hex;
use crate::state::AppState;

/// How long a stored response is replayed.
const RETENTION_MS: i64 = 24 * 3600 * 1000;

/// A claim older than this belongs to a request that will never finish (its process died);
/// no request runs anywhere near this long (the database statement timeout is 20 s).
const STALE_CLAIM_MS: i64 = 60_000;

/// Keys longer than this are refused (docs/api.md: 1–255 printable ASCII characters).
const KEY_LEN_MAX: usize = 255;

/// A number whose exact value is an integer is written out in full up to this many digits
/// (so `998`, `998.0` and `9.98e2` read alike); longer ones keep an exponent, which bounds
/// what `1e999999` costs.
const INTEGER_DIGITS_MAX: i64 = 40;

pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > KEY_LEN_MAX || !key.bytes().all(|b| (0x20..=0x7e).contains(&b))
    {
        return Err(Error::invalid(
            "Idempotency-Key must be 1-255 printable ASCII characters",
        ));
    }
    Ok(())
}

/// Identifies a request: method, path and body. A JSON body counts by its content (keys
/// sorted, whitespace ignored, numbers by their exact decimal value — never through a
/// float, where `998.0000000000000001` and `998.0` would be one number), so a client
/// re-serializing the same request still matches; anything else counts byte for byte.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = std::str::from_utf8(body).ok().and_then(|text| {
        let mut out = String::with_capacity(text.len());
        canonical_json(text, &mut out).map(|()| out.into_bytes())
    });
    let body = canonical.as_deref().unwrap_or(body);
    let mut bytes = Vec::with_capacity(method.len() + path.len() + body.len() + 2);
    for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        bytes.extend_from_slice(part);
    }
    sha256_hex(&bytes)
}

/// Writes `text` (one JSON value) in canonical form; `None` when it is not JSON.
fn canonical_json(text: &str, out: &mut String) -> Option<()> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    let text = raw.get();
    match text.as_bytes().first()? {
        b'{' => {
            let fields: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            out.push('{');
            for (n, (name, value)) in fields.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).ok()?);
                out.push(':');
                canonical_json(value.get(), out)?;
            }
            out.push('}');
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical_json(item.get(), out)?;
            }
            out.push(']');
        }
        b'"' => {
            let string: String = serde_json::from_str(text).ok()?;
            out.push_str(&serde_json::to_string(&string).ok()?);
        }
        b't' | b'f' | b'n' => out.push_str(text),
        _ => out.push_str(&canonical_number(text)?),
    }
    Some(())
}

/// A JSON number's exact value as text: `998`, `998.0`, `9.98e2` give `998`;
/// `998.0000000000000001` gives `9980000000000000001e-16`. Integers read as they are written.
fn canonical_number(text: &str) -> Option<String> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".to_string());
    }
    let significant = digits.trim_end_matches('0');
    let exponent = exponent
        .checked_sub(frac.len() as i64)?
        .checked_add((digits.len() - significant.len()) as i64)?;
    if (0..=INTEGER_DIGITS_MAX - significant.len() as i64).contains(&exponent) {
        let zeros = "0".repeat(exponent as usize);
        return Some(format!("{sign}{significant}{zeros}"));
    }
    Some(format!("{sign}{significant}e{exponent}"))
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
    /// Set by `complete_in`, so `run` does not write the same answer a second time.
    stored: Arc<AtomicBool>,
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
/// now stands instead of creating another.
pub async fn record_resource(
    conn: &mut sqlx::AnyConnection,
    key: &KeyRef,
    resource: Resource<'_>,
) -> Result<()> {
    let (Resource::Payment(id) | Resource::Refund(id)) = resource;
    sqlx::query(
        "UPDATE idempotency_keys SET resource_id = $1, resource_kind = $2 WHERE scope = $3 AND idem_key = $4",
    )
    .bind(id)
    .bind(resource.kind())
    .bind(&key.scope)
    .bind(&key.key)
    .execute(&mut *conn)
    .await?;
    Ok(())
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
            stored: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the handler already stored its answer in its own transaction.
    pub fn stored_in_tx(&self) -> bool {
        self.stored.load(Ordering::Relaxed)
    }

    /// The key a request with bearer `token` runs under in `scope` (as `run` makes it).
    pub fn new(scope: &str, key: &str, token: &str) -> KeyRef {
        KeyRef::claimed(scope, key, &seal::credential_key(token))
    }
}

/// Stores the response inside the caller's transaction.
pub async fn complete_in(
    conn: &mut sqlx::AnyConnection,
    key: &KeyRef,
    status: StatusCode,
    body: &impl serde::Serialize,
) -> Result<()> {
    let body = to_value(body)?;
    store(conn, &key.scope, &key.key, &key.seal_key, status, &body).await?;
    // If the caller's transaction then fails, its 5xx releases the claim anyway.
    key.stored.store(true, Ordering::Relaxed);
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
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, state, created_at)
         VALUES ($1, $2, $3, 'running', $4) ON CONFLICT DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Won);
    }
    let row = sqlx::query("SELECT fingerprint, state, status_code, body, created_at, resource_id, resource_kind FROM idempotency_keys WHERE scope = $1 AND idem_key = $2")
        .bind(scope)
        .bind(key)
        .fetch_optional(&state.db.pool)
        .await?;
    let Some(row) = row else {
        // Released (a 5xx) or purged between our insert and read: try the claim once more.
        return Box::pin(claim(state, scope, key, fingerprint, seal_key)).await;
    };
    let created_at: i64 = row.get("created_at");
    let stored_state: String = row.get("state");
    if row.get::<String, _>("fingerprint") != fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    if stored_state == "running" {
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET created_at = $1 WHERE scope = $2 AND idem_key = $3 AND state = 'running' AND created_at = $4 AND created_at <= $5",
        )
        .bind(now)
        .bind(scope)
        .bind(key)
        .bind(created_at)
        .bind(now - STALE_CLAIM_MS)
        .execute(&state.db.pool)
        .await?
        .rows_affected();
        if taken == 0 {
            return Err(Error::IdempotencyKeyInUse);
        }
        // The request that held the claim died. If it had created its payment, answer with
        // that payment (and keep the answer) rather than starting a second one.
        if let Some(resource_id) = row.get::<Option<String>, _>("resource_id") {
            let kind: Option<String> = row.get("resource_kind");
            let mut conn = state.db.pool.acquire().await?;
            let view = resource_view(&mut conn, kind.as_deref(), &resource_id).await?;
            drop(conn);
            if let Some(view) = view {
                complete(state, scope, key, seal_key, StatusCode::CREATED, &view).await?;
                return Ok(Claim::Replay(StatusCode::CREATED, view));
            }
        }
        return Ok(Claim::Won);
    }
    let code: i64 = row.get("status_code");
    let status = u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| crate::error::corrupt("idempotency_keys.status_code", &code.to_string()))?;
    let body: String = row.get("body");
    let stored: Value = serde_json::from_str(&body)
        .map_err(|_| crate::error::corrupt("idempotency_keys.body", "(not JSON)"))?;
    Ok(Claim::Replay(
        status,
        seal::unseal(stored, seal_key, scope, key),
    ))
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
    sqlx::query("UPDATE idempotency_keys SET state = 'done', status_code = $1, body = $2 WHERE scope = $3 AND idem_key = $4")
        .bind(status.as_u16() as i64)
        .bind(seal::seal(body, seal_key, scope, key).to_string())
        .bind(scope)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn release(state: &AppState, scope: &str, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND state = 'running'",
    )
    .bind(scope)
    .bind(key)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

/// Forgets keys older than the retention window.
pub async fn purge_expired(state: &AppState) -> Result<u64> {
    let n = sqlx::query("DELETE FROM idempotency_keys WHERE state = 'done' AND created_at < $1")
        .bind(state.now_ms() - RETENTION_MS)
        .execute(&state.db.pool)
        .await?
        .rows_affected();
    Ok(n)
}

/// A view as the JSON an answer stores.
pub fn to_value(view: impl serde::Serialize) -> Result<Value> {
    Ok(serde_json::to_value(view).map_err(anyhow::Error::from)?)
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn same_json_in_other_clothes_is_the_same_request() {
        let a = super::fingerprint(
            "POST",
            "/v1/orders",
            br#"{"items": [{"sku": "A", "qty": 1}], "x": 1}"#,
        );
        let b = super::fingerprint(
            "POST",
            "/v1/orders",
            br#"{"x":1,"items":[{"qty":1,"sku":"A"}]}"#,
        );
        let c = super::fingerprint(
            "POST",
            "/v1/orders",
            br#"{"x":1,"items":[{"qty":2,"sku":"A"}]}"#,
        );
        let d = super::fingerprint(
            "POST",
            "/v1/orders/x",
            br#"{"x":1,"items":[{"qty":1,"sku":"A"}]}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn numbers_count_by_their_exact_value() {
        let check = |text: &str, expected: &str| {
            assert_eq!(
                super::canonical_number(text).as_deref(),
                Some(expected),
                "{text}"
            );
        };
        check("998", "998");
        check("998.0", "998");
        check("9.98e2", "998");
        check("99800E-2", "998");
        check("998.0000000000000001", "9980000000000000001e-16");
        check("-0.50", "-5e-1");
        check("0", "0");
        check("-0.0e5", "0");
        check("1e40", "1e40");
        check("1e39", &format!("1{}", "0".repeat(39)));
        check("12345678901234567890123", "12345678901234567890123");
        assert_eq!(super::canonical_number("1e99999999999999999999"), None);
        let f = |body: &str| super::fingerprint("POST", "/p", body.as_bytes());
        assert_ne!(
            f(r#"{"amount": 998.0000000000000001}"#),
            f(r#"{"amount": 998.0}"#)
        );
        assert_eq!(
            f(r#"{"amount": 998.0, "a": "\u0041"}"#),
            f(r#"{"a":"A","amount":998}"#)
        );
        assert_ne!(f(r#"{"a": "1"}"#), f(r#"{"a": 1}"#));
    }

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
