//! Request extractors: the raw body (with the 64 KiB limit mapped to `payload_too_large`),
//! strict JSON parsing, and the caller's credential.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ids::{constant_time_eq, sha256_hex};
use crate::orders;
use crate::state::AppState;

/// Request bodies above this are refused with 413 before they are parsed.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The request body as sent, for strict parsing and for signature checks over raw bytes.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<RawBody> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Error::PayloadTooLarge)
            }
            Err(rejection) => Err(Error::invalid(format!(
                "could not read the body: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Parses a JSON body into `T`; syntax errors, wrong types and unknown fields are a 400.
/// The body must be a JSON object: serde also reads a struct from an array of its fields in
/// order, and `[]` would be a cancel, `[100]` a refund of 100. (Objects inside the body are
/// held to the same by `object`, `objects` and `not_null_object`.)
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::invalid("the body must be a JSON object"));
    }
    if has_nul(body) {
        return Err(Error::invalid("strings must not contain NUL (\\u0000)"));
    }
    serde_json::from_slice(body).map_err(|e| Error::invalid(format!("invalid JSON body: {e}")))
}

/// Whether a JSON text has a string holding U+0000, which PostgreSQL text cannot store.
/// JSON writes it only as the escape `\u0000` (a raw control character is a syntax error);
/// the backslash starts an escape when an even number of backslashes come before it.
fn has_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, six)| {
        six == b"\\u0000" && json[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// For a struct field of a request body, as `#[serde(deserialize_with = "object")]`: only a
/// JSON object is one (serde would read it from an array of its fields as well).
pub fn object<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(serde::de::Error::custom)
}

/// `object` for each element of a list field.
pub fn objects<'de, D, T>(deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    Vec::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)?
        .into_iter()
        .map(|fields| serde_json::from_value(serde_json::Value::Object(fields)))
        .collect::<std::result::Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// `object` for an optional struct field, `null` refused as `not_null` does.
pub fn not_null_object<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    object(deserializer).map(Some)
}

/// For the `Option` fields of request bodies, as `#[serde(default, deserialize_with =
/// "not_null")]`: an absent field is `None`, an explicit `null` is refused (400). `null` is
/// not a value; read as "absent" it once turned `{"amount": null}` into a full refund.
pub fn not_null<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Like `parse_json`, but an empty body means `T::default()` (for calls whose fields are all
/// optional, such as cancel and refund). Only an empty one: whitespace is not JSON, and a
/// malformed body changes nothing.
pub fn parse_json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Who is calling: the merchant (API key), or a customer holding one order's client secret.
/// It also carries a key derived from the credential itself (never stored), which seals
/// secrets in stored idempotent answers so only the same credential can read them back.
#[derive(Clone)]
pub struct Caller {
    who: Who,
    seal_key: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    Merchant,
    Order(String),
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.who.fmt(f)
    }
}

impl Caller {
    fn new(who: Who, token: &str) -> Caller {
        Caller {
            who,
            seal_key: crate::idempotency::seal::credential_key(token),
        }
    }

    /// Idempotency keys are scoped to the credential.
    pub fn scope(&self) -> String {
        match &self.who {
            Who::Merchant => "merchant".to_string(),
            Who::Order(id) => format!("order:{id}"),
        }
    }

    /// The key that seals this caller's stored secrets (see `idempotency::seal`).
    pub fn seal_key(&self) -> &[u8; 32] {
        &self.seal_key
    }

    /// May this caller see or act on the order? Any other order answers 404, never
    /// revealing whether it exists.
    pub fn check_order(&self, order_id: &str) -> Result<()> {
        match &self.who {
            Who::Merchant => Ok(()),
            Who::Order(id) if id == order_id => Ok(()),
            Who::Order(_) => Err(Error::NotFound("order")),
        }
    }

    pub fn require_merchant(&self) -> Result<()> {
        match self.who {
            Who::Merchant => Ok(()),
            Who::Order(_) => Err(Error::Unauthorized),
        }
    }

    /// Verifies the request's bearer token: the API key, or an order's client secret.
    pub async fn verify(headers: &axum::http::HeaderMap, state: &AppState) -> Result<Caller> {
        let token = bearer(headers).ok_or(Error::Unauthorized)?;
        let hash = sha256_hex(token.as_bytes());
        if constant_time_eq(hash.as_bytes(), state.api_key_hash.as_bytes()) {
            return Ok(Caller::new(Who::Merchant, token));
        }
        let mut conn = state.db.pool.acquire().await?;
        let head = orders::secret_holder(&mut conn, token)
            .await?
            .ok_or(Error::Unauthorized)?;
        Ok(Caller::new(Who::Order(head.id.to_string()), token))
    }
}

/// What the rate limiter learned of the credential, kept for the `Caller` extractor so the
/// token is verified once per request: `None` when it is definitely not valid.
#[derive(Clone)]
pub struct Verified(pub Option<Caller>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller> {
        if let Some(Verified(verified)) = parts.extensions.get::<Verified>() {
            return verified.clone().ok_or(Error::Unauthorized);
        }
        Caller::verify(&parts.headers, state).await
    }
}
