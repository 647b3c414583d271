//! Calls to a gateway over HTTP, retried when the outcome is unknown: a transport error or
//! timeout, a 5xx, a 429, or a 409 for a request still running under the same idempotency
//! key. Every retry repeats the same idempotency key, so it can never charge twice. Waits
//! are capped exponential backoff with full jitter, or the gateway's `Retry-After`.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::gateway::GatewayError;

/// How many times one gateway call is tried before its outcome is left unknown (the
/// recovery worker asks again later with the same key).
pub const ATTEMPTS_MAX: u32 = 4;

/// Reads (GET) change nothing at the gateway, so they are tried longer: a reconciliation
/// listing of many pages must not be lost to a few unlucky answers.
pub const READ_ATTEMPTS_MAX: u32 = 8;

/// Backoff: the n-th wait is random in `0..=min(CAP, BASE * 2^n)`.
pub const BACKOFF_BASE_MS: u64 = 100;
pub const BACKOFF_CAP_MS: u64 = 2_000;

/// A `Retry-After` longer than this is not waited for in the request; recovery takes over.
pub const RETRY_AFTER_MAX_MS: u64 = 5_000;

/// Time allowed for one gateway HTTP call (connect, send, answer).
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// A gateway's answer worth keeping (2xx or a definite 4xx).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The gateway replayed the first answer to this idempotency key.
    pub replayed: bool,
    pub body: Value,
}

pub fn client() -> reqwest::Client {
    crate::tls::client(Duration::from_millis(REQUEST_TIMEOUT_MS))
}

/// The wait before retry number `attempt` (0-based): full jitter over the capped exponential.
pub fn backoff_ms(attempt: u32) -> u64 {
    let ceiling = BACKOFF_CAP_MS.min(BACKOFF_BASE_MS.saturating_mul(1 << attempt.min(20)));
    rand::thread_rng().gen_range(0..=ceiling)
}

/// Sends the request `build` makes until it gets an answer worth keeping.
pub async fn send(build: impl Fn() -> reqwest::RequestBuilder) -> Result<Answer, GatewayError> {
    let read = build()
        .build()
        .is_ok_and(|req| req.method() == reqwest::Method::GET);
    let attempts = if read {
        READ_ATTEMPTS_MAX
    } else {
        ATTEMPTS_MAX
    };
    let mut last_problem = String::new();
    for attempt in 0..attempts {
        let mut wait_ms = backoff_ms(attempt);
        match build().send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after_ms = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|secs| secs.saturating_mul(1000));
                let replayed = resp
                    .headers()
                    .get("idempotent-replayed")
                    .is_some_and(|v| v == "true");
                let body = resp.json::<Value>().await.unwrap_or(Value::Null);
                let unknown = status >= 500 || status == 429 || status == 409;
                if !unknown {
                    return Ok(Answer {
                        status,
                        replayed,
                        body,
                    });
                }
                last_problem = format!("{status} {body}");
                if let Some(ms) = retry_after_ms {
                    if ms > RETRY_AFTER_MAX_MS {
                        break;
                    }
                    wait_ms = ms;
                }
            }
            Err(err) => last_problem = format!("transport: {}", error_chain(&err)),
        }
        if attempt + 1 < attempts {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }
    Err(GatewayError::Unavailable(last_problem))
}

/// An error with its causes ("error sending request: … : invalid peer certificate: …"):
/// reqwest's own message hides the one that says what went wrong.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A gateway that answers `script[n]` to its n-th call (then 200), counting calls.
    async fn scripted(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::any(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (status, retry_after) = script.get(n).copied().unwrap_or((200, None));
                async move {
                    let mut response = axum::response::IntoResponse::into_response((
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        axum::Json(serde_json::json!({"n": n})),
                    ));
                    if let Some(secs) = retry_after {
                        response
                            .headers_mut()
                            .insert("retry-after", secs.parse().unwrap());
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    #[tokio::test]
    async fn unknown_outcomes_are_retried_until_an_answer() {
        let (url, calls) = scripted(vec![(500, None), (409, None), (429, None)]).await;
        let http = client();
        let answer = send(|| http.post(&url).header("Idempotency-Key", "k"))
            .await
            .unwrap();
        assert_eq!((answer.status, calls.load(Ordering::SeqCst)), (200, 4));
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let (url, calls) = scripted(vec![(503, Some("1"))]).await;
        let http = client();
        let started = std::time::Instant::now();
        let answer = send(|| http.post(&url)).await.unwrap();
        assert_eq!((answer.status, calls.load(Ordering::SeqCst)), (200, 2));
        assert!(
            started.elapsed() >= Duration::from_millis(1000),
            "waited {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn definite_answers_are_not_retried_and_persistent_failure_gives_up() {
        let (url, calls) = scripted(vec![(402, None)]).await;
        let http = client();
        assert_eq!(send(|| http.post(&url)).await.unwrap().status, 402);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (url, calls) = scripted(vec![(500, None); 10]).await;
        assert!(matches!(
            send(|| http.post(&url)).await,
            Err(GatewayError::Unavailable(_))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS_MAX as usize);
        // A read is tried longer: it can change nothing at the gateway.
        let (url, calls) = scripted(vec![(500, None); 10]).await;
        assert!(send(|| http.get(&url)).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), READ_ATTEMPTS_MAX as usize);
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        for attempt in 0..30 {
            let ceiling = BACKOFF_CAP_MS.min(BACKOFF_BASE_MS << attempt.min(20));
            for _ in 0..50 {
                assert!(backoff_ms(attempt) <= ceiling);
            }
        }
    }
}
