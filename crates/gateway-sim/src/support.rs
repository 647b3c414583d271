//! The simulator's small helpers of its own: ids and tokens, hex and HMAC-SHA256, the
//! payment methods it knows, and the clock it reads (which the embedding may move).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Random characters after an id's prefix: enough that ids never collide.
const ID_RANDOM_LEN: usize = 24;

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(ID_RANDOM_LEN))
}

/// Random alphanumeric characters (keys and secrets when none is configured).
pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    format!("{:x}", mac.finalize().into_bytes())
}

/// Lowercase hex HMAC-SHA256 of `body` (Razorpay's webhook and payment signatures).
pub(crate) fn hmac_hex(secret: &str, body: &[u8]) -> String {
    hmac_sha256(secret, &[body])
}

/// A Stripe-scheme signature header, `t=<secs>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, as
/// the simulator signs its own-protocol and Stripe webhooks.
pub(crate) fn sign(secret: &str, t_secs: i64, body: &[u8]) -> String {
    let t = t_secs.to_string();
    format!(
        "t={t},v1={}",
        hmac_sha256(secret, &[t.as_bytes(), b".", body])
    )
}

/// The payment methods the simulator takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Card,
    Upi,
    Wallet,
}

impl Method {
    pub(crate) fn parse(s: &str) -> Option<Method> {
        match s {
            "card" => Some(Method::Card),
            "upi" => Some(Method::Upi),
            "wallet" => Some(Method::Wallet),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Card => "card",
            Method::Upi => "upi",
            Method::Wallet => "wallet",
        }
    }
}

/// A UPI address (`name@handle`) the simulator will collect from.
pub(crate) fn valid_vpa(vpa: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    vpa.len() <= 100
        && vpa
            .split_once('@')
            .is_some_and(|(name, handle)| part(name) && part(handle))
}

pub(crate) fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The simulator's time in unix milliseconds: the system's, or one its embedding hands it
/// (Till's tests move their clock, and the simulator's due webhooks follow it).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(system_now_ms))
    }

    pub fn from_fn(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now_ms))
    }

    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmacs_of_the_timestamped_body() {
        assert_eq!(
            hmac_hex("key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            sign("key", 7, b"body"),
            format!("t=7,v1={}", hmac_hex("key", b"7.body"))
        );
    }

    #[test]
    fn vpas_and_methods() {
        assert!(valid_vpa("success@razorpay"));
        assert!(!valid_vpa("not-a-vpa"));
        assert!(!valid_vpa("@bank"));
        assert_eq!(Method::parse("upi").map(Method::as_str), Some("upi"));
        assert_eq!(Method::parse("cash"), None);
    }
}
