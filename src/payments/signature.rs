//! Webhook signatures in Stripe's scheme, used by the simulator and the Stripe adapter:
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">`, several `v1` allowed (one
//! per secret while a secret is being rotated), a timestamp tolerance against replays, and
//! a constant-time comparison.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A webhook whose timestamp is further than this from now is refused (replay window).
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// `t=<secs>,v1=<hex>` over `"{t}.{body}"`.
pub fn sign(secret: &str, t_secs: i64, body: &[u8]) -> String {
    format!(
        "t={t_secs},v1={:x}",
        mac(secret, t_secs, body).finalize().into_bytes()
    )
}

fn mac(secret: &str, t_secs: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a signature header: a fresh timestamp and any `v1` matching, compared in
/// constant time (`Mac::verify_slice`).
pub fn verify(secret: &str, header: &str, body: &[u8], now_secs: i64) -> Result<(), String> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("signature has no timestamp")?;
    if now_secs.abs_diff(t) > SIGNATURE_TOLERANCE_SECS as u64 {
        return Err("signature timestamp is outside the tolerance".into());
    }
    let matches = candidates.iter().any(|hex| {
        from_hex(hex).is_some_and(|bytes| mac(secret, t, body).verify_slice(&bytes).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err("signature does not match".into())
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lowercase hex HMAC-SHA256 of `body` (Razorpay's webhook and payment signatures).
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("{:x}", mac.finalize().into_bytes())
}

/// Compares a hex HMAC-SHA256 signature of `body` in constant time.
pub fn verify_hmac_hex(secret: &str, body: &[u8], signature_hex: &str) -> bool {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    from_hex(signature_hex).is_some_and(|bytes| mac.verify_slice(&bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_when_fresh_and_intact() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("s3cret", 1_000, body);
        assert!(verify("s3cret", &header, body, 1_000).is_ok());
        assert!(verify("s3cret", &header, body, 1_000 + SIGNATURE_TOLERANCE_SECS).is_ok());
        assert!(verify(
            "s3cret",
            &header,
            body,
            1_000 + SIGNATURE_TOLERANCE_SECS + 1
        )
        .is_err());
        assert!(verify("other", &header, body, 1_000).is_err());
        assert!(verify("s3cret", &header, br#"{"id":"evt_2"}"#, 1_000).is_err());
        assert!(verify("s3cret", "v1=00", body, 1_000).is_err());
        let rotated = format!("{header},v1={}", "ab".repeat(32));
        assert!(verify("s3cret", &rotated, body, 1_000).is_ok());
    }

    #[test]
    fn hex_hmac_verifies_in_constant_time() {
        let sig = hmac_hex("k", b"order_1|pay_1");
        assert!(verify_hmac_hex("k", b"order_1|pay_1", &sig));
        assert!(!verify_hmac_hex("k", b"order_1|pay_2", &sig));
        assert!(!verify_hmac_hex("k", b"order_1|pay_1", "zz"));
    }
}
