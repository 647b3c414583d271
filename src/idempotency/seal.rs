//! Secrets in stored idempotent answers are sealed, never kept in clear.
//!
//! `POST /v1/orders` answers with the order's `client_secret`, and that answer is kept for
//! 24 h so a retry gets the same body. Storing it in clear would hand every order to anyone
//! who reads the database (or a backup of it). Till cannot recompute the secret (it is
//! random; only its hash is on the order), and Till holds no key of its own that a database
//! reader lacks (the API key is kept only as a hash). What a replay does have is the
//! credential that made the request: the same key in the same scope can only be replayed by
//! that credential. So the secret is encrypted under a key derived from the bearer token
//! itself: HMAC-SHA256(token) gives the credential key, HMAC-SHA256 over (scope, idempotency
//! key) binds it to one stored row, and the secret is XORed with an HMAC-SHA256 keystream
//! under a random nonce, then authenticated (encrypt-then-MAC). The token never reaches the
//! database; the stored row is useless without it. A replay by another credential (an API
//! key rotated in the meantime) cannot open it and gets the answer without the secret.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::ids::constant_time_eq;

/// Fields of an answer that hold a secret; each is stored as `<field>_sealed` instead.
/// (`secret`: a merchant webhook endpoint's signing secret, in the answer that created it.)
const SEALED_FIELDS: &[&str] = &["client_secret", "secret"];

/// Suffix of the stored field that holds a sealed secret.
const SEALED_SUFFIX: &str = "_sealed";

/// A random nonce per sealing, so a key reused after the 24 h purge never repeats a
/// keystream; 128 bits make a collision negligible.
const NONCE_BYTES: usize = 16;

/// The authentication tag: a full HMAC-SHA256.
const TAG_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The credential's key, derived from the bearer token; held in memory for one request.
pub fn credential_key(token: &str) -> [u8; 32] {
    hmac(token.as_bytes(), &[b"till/idempotency-seal/v1"])
}

/// The key for one stored answer: the credential's, bound to the scope and idempotency key.
fn row_key(credential: &[u8; 32], scope: &str, key: &str) -> [u8; 32] {
    hmac(credential, &[b"row", scope.as_bytes(), key.as_bytes()])
}

fn keystream_xor(key: &[u8; 32], nonce: &[u8], data: &mut [u8]) {
    for (block, chunk) in data.chunks_mut(32).enumerate() {
        let stream = hmac(key, &[b"stream", nonce, &(block as u64).to_be_bytes()]);
        for (byte, k) in chunk.iter_mut().zip(stream) {
            *byte ^= k;
        }
    }
}

fn encrypt(key: &[u8; 32], plain: &str) -> String {
    let nonce: [u8; NONCE_BYTES] = rand::random();
    let mut data = plain.as_bytes().to_vec();
    keystream_xor(key, &nonce, &mut data);
    let tag = hmac(key, &[b"tag", &nonce, &data]);
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    out.extend_from_slice(&tag);
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn decrypt(key: &[u8; 32], sealed: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    if raw.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, rest) = raw.split_at(NONCE_BYTES);
    let (data, tag) = rest.split_at(rest.len() - TAG_BYTES);
    if !constant_time_eq(&hmac(key, &[b"tag", nonce, data]), tag) {
        return None;
    }
    let mut data = data.to_vec();
    keystream_xor(key, nonce, &mut data);
    String::from_utf8(data).ok()
}

/// Every JSON object in `value`, at any depth (a secret may sit in a nested object, such as
/// a payment's `next_action`).
fn each_object(value: &mut Value, f: &mut impl FnMut(&mut serde_json::Map<String, Value>)) {
    match value {
        Value::Object(fields) => {
            f(fields);
            for child in fields.values_mut() {
                each_object(child, f);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| each_object(item, f)),
        _ => {}
    }
}

/// The answer as it may be stored: every secret field sealed.
pub fn seal(body: &Value, credential: &[u8; 32], scope: &str, key: &str) -> Value {
    let mut stored = body.clone();
    let row = row_key(credential, scope, key);
    each_object(&mut stored, &mut |fields| {
        for name in SEALED_FIELDS {
            if let Some(Value::String(secret)) = fields.remove(*name) {
                let sealed = Value::String(encrypt(&row, &secret));
                fields.insert(format!("{name}{SEALED_SUFFIX}"), sealed);
            }
        }
    });
    stored
}

/// The stored answer as first sent: every sealed field opened again. One this credential
/// cannot open is left out (never answered in its sealed form).
pub fn unseal(mut stored: Value, credential: &[u8; 32], scope: &str, key: &str) -> Value {
    let row = row_key(credential, scope, key);
    each_object(&mut stored, &mut |fields| {
        for name in SEALED_FIELDS {
            let Some(sealed) = fields.remove(&format!("{name}{SEALED_SUFFIX}")) else {
                continue;
            };
            match sealed.as_str().and_then(|s| decrypt(&row, s)) {
                Some(secret) => {
                    fields.insert(name.to_string(), Value::String(secret));
                }
                None => tracing::warn!(
                    field = name,
                    "a stored answer's secret does not open with this credential; replayed without it"
                ),
            }
        }
    });
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_answers_open_only_with_the_same_credential_and_row() {
        let body = json!({"id": "ord_1", "client_secret": "ord_1_secret_abc", "total": 5});
        let alice = credential_key("sk_alice");
        let stored = seal(&body, &alice, "merchant", "k1");
        assert!(!stored.to_string().contains("abc"), "{stored}");
        assert_eq!(stored["total"], 5);
        assert_eq!(unseal(stored.clone(), &alice, "merchant", "k1"), body);
        let mallory = credential_key("sk_mallory");
        let opened = unseal(stored.clone(), &mallory, "merchant", "k1");
        assert_eq!(opened, json!({"id": "ord_1", "total": 5}));
        let moved = unseal(stored, &alice, "merchant", "k2");
        assert!(moved.get("client_secret").is_none());
        let plain = json!({"error": {"code": "x"}});
        assert_eq!(
            unseal(seal(&plain, &alice, "s", "k"), &alice, "s", "k"),
            plain
        );
    }

    #[test]
    fn long_secrets_and_tampering() {
        let key = credential_key("t");
        let row = row_key(&key, "s", "k");
        let long = "x".repeat(100);
        let sealed = encrypt(&row, &long);
        assert_eq!(decrypt(&row, &sealed).as_deref(), Some(long.as_str()));
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        raw[NONCE_BYTES] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(decrypt(&row, &tampered), None);
        assert_eq!(decrypt(&row, "AAAA"), None);
    }
}
