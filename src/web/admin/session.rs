//! Signing in to the console with the API key, the session cookie, and the CSRF tokens.
//!
//! The browser holds only a random session token, in an `HttpOnly`, `SameSite=Strict`
//! cookie scoped to `/admin`; the database keeps its SHA-256 (`store.rs`). Every form of a
//! session carries a CSRF token derived from the session's token (an HMAC of it, so nothing
//! more is stored, and a token of one session is worthless in another); the sign-in form,
//! before there is a session, carries the pages' own token (`web::csrf`), so it cannot be
//! posted from another site either. The API key is read from the sign-in form's body once
//! and never written into a page, a URL or a log.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sqlx::Connection;

use super::page;
use crate::error::Result;
use crate::ids::{constant_time_eq, random_token, sha256_hex};
use crate::payments::signature::hmac_hex;
use crate::state::AppState;
use crate::web::csrf;

/// The session cookie.
const SESSION_COOKIE: &str = "till_admin";
/// How long a session lasts from sign-in.
pub const SESSION_TTL_MS: i64 = 8 * 60 * 60 * 1000;
/// Random characters in a session token (~190 bits).
const TOKEN_LEN: usize = 32;

/// The CSRF token of the forms of the session whose token is `secret`.
fn csrf_token(secret: &str) -> String {
    hmac_hex(secret, b"till admin console: csrf")
}

/// Whether a form's CSRF token is the one for `secret`.
fn csrf_ok(secret: &str, sent: &str) -> bool {
    constant_time_eq(csrf_token(secret).as_bytes(), sent.as_bytes())
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
        let Some(token) = csrf::cookie(&parts.headers, SESSION_COOKIE) else {
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

/// `GET /admin/sign-in`: the form, with the pages' CSRF token (and its cookie if new).
pub async fn sign_in_form(headers: HeaderMap) -> Response {
    let (token, set) = csrf::token(&headers);
    let mut response = page::sign_in(&token, None, StatusCode::OK).into_response();
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
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
    if csrf::check(&headers, &form.csrf).is_err() {
        return Ok(Refused.into_response());
    }
    let key_hash = sha256_hex(form.api_key.trim().as_bytes());
    if !constant_time_eq(key_hash.as_bytes(), state.api_key_hash.as_bytes()) {
        let wrong = Some("That is not this Till's API key.");
        return Ok(page::sign_in(&form.csrf, wrong, StatusCode::UNAUTHORIZED).into_response());
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
