//! Per-credential rate limiting (`TILL_RATE_LIMIT_PER_SEC`, off by default): a token bucket
//! per verified credential (the API key holder, or the order a client secret grants), and
//! per client address for requests without a valid one — so a flood of junk tokens shares
//! one bucket instead of getting a fresh one each. Refilled at the configured rate with a
//! burst of twice that. Each instance limits on its own; the limit protects the instance,
//! not a global quota. The verified credential is handed on to the `Caller` extractor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::{Caller, Verified};
use crate::error::Error;
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

    pub fn enabled(&self) -> bool {
        self.per_sec > 0
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
pub async fn limit(
    State((state, limiter)): State<(AppState, Arc<RateLimiter>)>,
    mut req: Request,
    next: Next,
) -> Response {
    if !limiter.enabled() {
        return next.run(req).await;
    }
    let bucket = match Caller::verify(req.headers(), &state).await {
        Ok(caller) => {
            let bucket = format!("credential:{}", caller.scope());
            req.extensions_mut().insert(Verified(Some(caller)));
            bucket
        }
        Err(err) => {
            if matches!(err, Error::Unauthorized) {
                req.extensions_mut().insert(Verified(None));
            }
            // No peer address only when the router is driven without a listener (tests).
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string());
            format!("address:{peer}")
        }
    };
    if limiter.allow(&bucket, Instant::now()) {
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
