//! Serving the router on a listener with limits axum's own `serve` does not set: a client
//! gets `read_timeout` to send its headers (a half-open "slowloris" connection is closed)
//! and again for its body (`read_body`), and at most `max_connections` are served at once —
//! past that, new connections wait in the kernel's listen queue and cost Till nothing. On
//! shutdown it stops accepting and lets each connection finish the request it is serving.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::extract::BODY_LIMIT_BYTES;
use crate::error::Error;
use crate::stopping::Stopping;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub read_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts and serves connections until `stopping` says stop; then the listener is closed,
/// each connection ends after the request it is serving, and this returns once all have.
/// Each request carries its peer's address (`ConnectInfo<SocketAddr>`) for the rate limiter.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stopping: Stopping) {
    let max = limits.max_connections.clamp(1, 1 << 20) as u32;
    let slots = Arc::new(Semaphore::new(max as usize));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            _ = stopping.stopped() => break,
        };
        let Ok(permit) = permit else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.stopped() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req.map(Body::new))
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = stopping.stopped() => {
                    // The request being served is answered; the connection then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends: all of them back, all have ended.
    let _ = slots.acquire_many(max).await;
}

/// Reads the whole body (Till's bodies are small) within the read timeout and the body
/// limit, so a client that trickles its body, or sends too much of it, is answered at once
/// instead of holding a connection and a task.
pub async fn read_body(State(read_timeout): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, BODY_LIMIT_BYTES);
    let refused = match tokio::time::timeout(read_timeout, read).await {
        Ok(Ok(bytes)) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => Error::PayloadTooLarge,
        Err(_) => Error::RequestTimeout,
    };
    // The rest of the body is never read, so the connection cannot carry another request.
    let mut response = refused.into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
