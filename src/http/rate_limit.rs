//! Per-credential rate limiting (`TILL_RATE_LIMIT_PER_SEC`, off by default): a token bucket
//! per bearer token, refilled at the configured rate with a burst of twice that. Each
//! instance limits on its own; the limit protects the instance, not a global quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::ids::sha256_hex;
use crate::state::AppState;

/// Buckets kept at most; past this the table is emptied (every caller starts full again),
/// which bounds memory against a flood of distinct tokens.
const BUCKETS_MAX: usize = 100_000;

/// Tokens are counted in thousandths so refills need no floating point.
const MILLI: u64 = 1_000;

pub struct RateLimiter {
    per_sec: u64,
    buckets: Mutex<HashMap<String, (u64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_sec: u64) -> RateLimiter {
        RateLimiter {
            per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `caller`; false when the bucket is empty.
    pub fn allow(&self, caller: &str, now: Instant) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let capacity = 2 * self.per_sec * MILLI;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(caller) {
            buckets.clear();
        }
        let (tokens, last) = buckets.entry(caller.to_string()).or_insert((capacity, now));
        let refill = now.saturating_duration_since(*last).as_millis() as u64 * self.per_sec;
        *tokens = (*tokens + refill).min(capacity);
        *last = now;
        if *tokens >= MILLI {
            *tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

/// The middleware: 429 `rate_limited` with `Retry-After: 1` past the limit.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if state
        .rate_limiter
        .allow(&sha256_hex(token.as_bytes()), Instant::now())
    {
        return next.run(req).await;
    }
    let mut response = Error::RateLimited.into_response();
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_per_caller() {
        let limiter = RateLimiter::new(5);
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| limiter.allow("a", t0)).count(), 10);
        assert!(!limiter.allow("a", t0));
        assert!(limiter.allow("b", t0), "callers have buckets of their own");
        assert!(limiter.allow("a", t0 + Duration::from_millis(200)));
        assert!(!limiter.allow("a", t0 + Duration::from_millis(200)));
        assert!(RateLimiter::new(0).allow("a", t0));
    }
}
