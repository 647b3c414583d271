//! Cross-site request forgery protection for the pages' forms: a random token in a
//! `SameSite=Strict`, `HttpOnly` cookie, repeated in a hidden field of every form, and a POST
//! is accepted only when the two agree. Another site can make a browser post a form, but it
//! can neither read the cookie nor set it, so it cannot send the matching field.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::error::{Error, Result};
use crate::ids::{constant_time_eq, random_token};

/// The cookie's name.
pub const COOKIE: &str = "till_csrf";
/// The hidden field's name in every form.
pub const FIELD: &str = "csrf";
/// Random characters in a token: 24 alphanumerics, about 143 bits.
const TOKEN_CHARS: usize = 24;

/// The value of cookie `name` in the request, if it sent one.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The request's token, or a new one with the `Set-Cookie` header that gives it to the
/// browser. The page puts the token in each of its forms.
pub fn token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(token) = cookie(headers, COOKIE).filter(|t| t.len() == TOKEN_CHARS) {
        return (token.to_string(), None);
    }
    let token = random_token(TOKEN_CHARS);
    let set = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let set = HeaderValue::from_str(&set).expect("a token is a valid header value");
    (token, Some(set))
}

/// A form's POST is accepted only with the cookie's token in its `csrf` field.
pub fn check(headers: &HeaderMap, field: &str) -> Result<()> {
    match cookie(headers, COOKIE) {
        Some(token) if constant_time_eq(token.as_bytes(), field.as_bytes()) => Ok(()),
        _ => Err(Error::invalid(
            "the form has expired; reload the page and try again",
        )),
    }
}
