//! Every error answer Till's API sends carries the JSON error body. The request line and
//! headers are checked against limits of Till's own, set below hyper's (past hyper's limits
//! hyper itself answers, with an empty body, before Till sees the request), and an error
//! response some layer produced without a JSON body (axum's 405, a path rejection's plain
//! text) is given one.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorBody};

/// A URI longer than this answers 414: 8 KiB is what common proxies pass on (nginx's
/// default `large_client_header_buffers`) and far under hyper's own 64 KiB limit, so an
/// overlong URI meets Till's JSON answer rather than hyper's empty one.
pub const URI_BYTES_MAX: usize = 8 * 1024;

/// Header names and values above this many bytes in all answer 431: real clients send a few
/// KiB; it stays well under hyper's ~400 KiB read buffer.
pub const HEADER_BYTES_MAX: usize = 32 * 1024;

/// More header lines than this answer 431; hyper's own fixed limit is 100.
pub const HEADER_COUNT_MAX: usize = 64;

/// How much of a non-JSON error body is kept as the JSON error's message: axum's rejection
/// texts are one short line; more would only echo a client's input back at length.
const MESSAGE_BYTES_MAX: usize = 512;

/// The middleware: refuses requests past the limits, and wraps error answers in JSON.
pub async fn json_errors(req: Request, next: Next) -> Response {
    if let Some(err) = over_limits(&req).or_else(|| nul_in_path(&req)) {
        return err.into_response();
    }
    let response = next.run(req).await;
    as_json(response).await
}

fn over_limits(req: &Request) -> Option<Error> {
    let uri_bytes = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_bytes > URI_BYTES_MAX {
        return Some(Error::UriTooLong(URI_BYTES_MAX));
    }
    let headers = req.headers();
    if headers.len() > HEADER_COUNT_MAX {
        return Some(Error::HeadersTooLarge("64 lines"));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (header_bytes > HEADER_BYTES_MAX).then_some(Error::HeadersTooLarge("32 KiB"))
}

/// A path with `%00` (NUL) is a 400 for every route: no id or SKU holds one, and
/// PostgreSQL text cannot.
fn nul_in_path(req: &Request) -> Option<Error> {
    req.uri()
        .path()
        .contains("%00")
        .then(|| Error::invalid("the path must not contain NUL (%00)"))
}

/// An error status without a JSON body gets `{"error": {"code", "message"}}`, its code
/// taken from the status; headers such as `Allow` stay. A page's error (`text/html`, from
/// `web`) stays the page a browser shows.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MESSAGE_BYTES_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, message) = describe(status, text);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

/// The API code (docs/api.md) for a status some layer answered on its own. 5xx text stays out of the
/// answer, as `Error` keeps it.
fn describe(status: StatusCode, text: String) -> (&'static str, String) {
    let known = match status {
        StatusCode::UNAUTHORIZED => Some(Error::Unauthorized),
        StatusCode::NOT_FOUND => Some(Error::NotFound("route")),
        StatusCode::METHOD_NOT_ALLOWED => Some(Error::MethodNotAllowed),
        StatusCode::PAYLOAD_TOO_LARGE => Some(Error::PayloadTooLarge),
        StatusCode::URI_TOO_LONG => Some(Error::UriTooLong(URI_BYTES_MAX)),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Some(Error::HeadersTooLarge("limit")),
        StatusCode::TOO_MANY_REQUESTS => Some(Error::RateLimited),
        _ => None,
    };
    if let Some(err) = known {
        return (err.code(), err.to_string());
    }
    if status.is_server_error() {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "unavailable"
        } else {
            "internal_error"
        };
        return (code, "internal error".to_string());
    }
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_lowercase()
    } else {
        text
    };
    ("invalid_request", message)
}
