//! Signing in to the console with the API key, the session cookie, and the CSRF tokens.
//!
//! The browser holds only a random session token, in an `HttpOnly`, `SameSite=Strict`
//! cookie scoped to `/admin`; the database keeps its SHA-256 (`store.rs`). Every form
//! carries a CSRF token derived from the token the browser holds (an HMAC of it, so nothing
//! more is stored): the session's once signed in, and before that a short-lived sign-in
//! cookie's, so a sign-in form cannot be posted from another site either. The API key is
//! read from the sign-in form's body once and never written into a page, a URL or a log.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sqlx::Connection;

use super::page::{self, Page};
use crate::error::Result;
use crate::ids::{constant_time_eq, random_token, sha256_hex};
use crate::payments::signature::hmac_hex;
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "till_admin";
/// The cookie a sign-in form's CSRF token is bound to, before there is a session.
const SIGN_IN_COOKIE: &str = "till_admin_sign_in";
/// How long a session lasts from sign-in.
pub const SESSION_TTL_MS: i64 = 8 * 60 * 60 * 1000;
/// How long a sign-in form may wait to be sent.
const SIGN_IN_TTL_SECS: i64 = 30 * 60;
/// Random characters in a session token (~190 bits).
const TOKEN_LEN: usize = 32;

/// The CSRF token of the forms of a browser holding `secret` (a session or sign-in token).
pub fn csrf_token(secret: &str) -> String {
    hmac_hex(secret, b"till admin console: csrf")
}

/// Whether a form's CSRF token is the one for `secret`.
fn csrf_ok(secret: &str, sent: &str) -> bool {
    constant_time_eq(csrf_token(secret).as_bytes(), sent.as_bytes())
}

/// The value of one cookie of a request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> (header::HeaderName, HeaderValue) {
    let text =
        format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}");
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&text).expect("cookie names and tokens are ASCII"),
    )
}

/// A signed-in console user: a request whose session cookie names an open session, opened
/// with the API key in force. Without one, a page answers with a redirect to sign in.
pub struct Console {
    token: String,
}

impl Console {
    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_token(&self.token)
    }

    /// Refuses (403) a form whose CSRF token is not this session's.
    pub fn check(&self, sent: &str) -> std::result::Result<(), Refused> {
        if csrf_ok(&self.token, sent) {
            Ok(())
        } else {
            Err(Refused)
        }
    }
}

/// A form with a missing or wrong CSRF token: refused, nothing done.
pub struct Refused;

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        page::message(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form's security token is missing or out of date. Go back, reload the page and try again.",
        )
    }
}

/// Where a request without a session is sent.
pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/admin/sign-in").into_response()
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Console, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(SignInFirst.into_response());
        };
        let found = async {
            let mut conn = state.db.pool.acquire().await?;
            super::store::session_key(&mut conn, &sha256_hex(token.as_bytes()), state.now_ms())
                .await
        }
        .await
        .map_err(IntoResponse::into_response)?;
        match found {
            Some(key) if constant_time_eq(key.as_bytes(), state.api_key_hash.as_bytes()) => {
                Ok(Console {
                    token: token.to_string(),
                })
            }
            _ => Err(SignInFirst.into_response()),
        }
    }
}

/// `GET /admin/sign-in`: the form, bound to a fresh sign-in cookie.
pub async fn sign_in_form() -> Response {
    let secret = random_token(TOKEN_LEN);
    let page = sign_in_page(&csrf_token(&secret), None);
    let mut response = page.into_response();
    let (name, value) = set_cookie(SIGN_IN_COOKIE, &secret, SIGN_IN_TTL_SECS);
    response.headers_mut().append(name, value);
    response
}

fn sign_in_page(csrf: &str, error: Option<&str>) -> Page {
    page::sign_in(csrf, error)
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/sign-in`: the API key checked against its stored hash; a session opened.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: super::Form<SignInForm>,
) -> Result<Response> {
    let form = form.0;
    let Some(secret) = cookie(&headers, SIGN_IN_COOKIE) else {
        return Ok(Refused.into_response());
    };
    if !csrf_ok(secret, &form.csrf) {
        return Ok(Refused.into_response());
    }
    let key_hash = sha256_hex(form.api_key.trim().as_bytes());
    if !constant_time_eq(key_hash.as_bytes(), state.api_key_hash.as_bytes()) {
        let mut page =
            sign_in_page(&form.csrf, Some("That is not this Till's API key.")).into_response();
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(page);
    }
    let token = random_token(TOKEN_LEN);
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    super::store::open_session(
        &mut tx,
        &sha256_hex(token.as_bytes()),
        &key_hash,
        now,
        now + SESSION_TTL_MS,
    )
    .await?;
    tx.commit().await?;
    let mut response = Redirect::to("/admin").into_response();
    let headers = response.headers_mut();
    let (name, value) = set_cookie(SESSION_COOKIE, &token, SESSION_TTL_MS / 1000);
    headers.append(name, value);
    let (name, value) = set_cookie(SIGN_IN_COOKIE, "", 0);
    headers.append(name, value);
    Ok(response)
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /admin/sign-out`: the session ended and its cookie cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    console: Console,
    form: super::Form<CsrfOnly>,
) -> Result<Response> {
    if let Err(refused) = console.check(&form.0.csrf) {
        return Ok(refused.into_response());
    }
    let mut conn = state.db.pool.acquire().await?;
    super::store::close_session(&mut conn, &sha256_hex(console.token.as_bytes())).await?;
    let mut response = Redirect::to("/admin/sign-in").into_response();
    let (name, value) = set_cookie(SESSION_COOKIE, "", 0);
    response.headers_mut().append(name, value);
    Ok(response)
}
