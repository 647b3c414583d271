//! The stylesheet and scripts, compiled into the binary and served under `/assets/`: no
//! build step, no CDN. Each answer carries an `ETag` (a hash of its bytes) and may be cached
//! for an hour; a revalidation with the same tag is a `304`.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::ids::sha256_hex;
use crate::state::AppState;

/// Every asset: its name under `/assets/`, content type and bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "till.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/till.css"),
    ),
    (
        "shop.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/shop.js"),
    ),
];

/// How long a browser may use an asset without asking again: an hour, short enough that a
/// new release's assets reach everyone the same day (the `ETag` makes the question cheap).
const MAX_AGE_SECS: u32 = 3600;

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{name}", get(asset))
}

/// The URL of an asset, for the pages.
pub fn href(name: &str) -> String {
    format!("/assets/{name}")
}

/// The asset's tag: a hash of its bytes, computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, bytes)| format!("\"{}\"", &sha256_hex(bytes)[..16]))
            .collect()
    })[index]
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (_, content_type, bytes) = ASSETS[index];
    let tag = etag(index);
    let cache = format!("public, max-age={MAX_AGE_SECS}");
    let common = [
        (header::ETAG, HeaderValue::from_static(tag)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cache).expect("a valid header value"),
        ),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response()
}
