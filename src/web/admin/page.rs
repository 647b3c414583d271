//! The console's page frame (navigation, sign-out form) and the small pieces every page
//! uses: amounts, times, status badges, and the HTML answer with its headers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::clock::rfc3339;
use crate::money::Currency;

/// An HTML page of the console.
pub struct Page {
    status: StatusCode,
    markup: Markup,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.markup.into_string()).into_response();
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Pages show orders and customers: never kept by a shared cache or the back button.
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
            (
                header::CONTENT_SECURITY_POLICY,
                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// The console's sections, in the navigation's order: (path, label).
const SECTIONS: &[(&str, &str)] = &[
    ("/admin", "Dashboard"),
    ("/admin/orders", "Orders"),
    ("/admin/inventory", "Inventory"),
    ("/admin/coupons", "Coupons"),
    ("/admin/tax", "Tax"),
    ("/admin/webhooks", "Webhooks"),
    ("/admin/events", "Events"),
];

/// A signed-in page: the navigation (with `active` marked), the sign-out form, the body.
pub fn console(title: &str, active: &str, csrf: &str, body: Markup) -> Page {
    let frame = html! {
        header.admin-bar {
            a.brand href="/admin" { "Till console" }
            nav aria-label="Console" {
                ul {
                    @for (path, label) in SECTIONS {
                        li {
                            @if *path == active {
                                a href=(path) aria-current="page" { (label) }
                            } @else {
                                a href=(path) { (label) }
                            }
                        }
                    }
                }
            }
            form method="post" action="/admin/sign-out" {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Sign out" }
            }
        }
        main #main { h1 { (title) } (body) }
    };
    document(StatusCode::OK, title, frame)
}

fn document(status: StatusCode, title: &str, body: Markup) -> Page {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Till console" }
                link rel="stylesheet" href="/admin/console.css";
            }
            body.admin { (body) }
        }
    };
    Page { status, markup }
}

/// The sign-in page, with what went wrong last time.
pub fn sign_in(csrf: &str, error: Option<&str>) -> Page {
    let body = html! {
        main #main .sign-in {
            h1 { "Sign in to the Till console" }
            p { "Use this Till's API key (" code { "TILL_API_KEY" } ", or the one " code { "till serve" } " printed when it generated it)." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="api_key" { "API key" }
                input #api_key type="password" name="api_key" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }
    };
    document(StatusCode::OK, "Sign in", body)
}

/// A page that only says something (a refusal, a missing record), with its status.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        main #main {
            h1 { (title) }
            p { (text) }
            p { a href="/admin" { "Back to the console" } }
        }
    };
    document(status, title, body).into_response()
}

/// What the last form did or could not do, carried back by its redirect (`?done=` or
/// `?error=`) and shown once at the top of the page.
#[derive(serde::Deserialize, Default)]
pub struct Notice {
    #[serde(default)]
    done: String,
    #[serde(default)]
    error: String,
}

impl Notice {
    /// The query string of a redirect that says `outcome`.
    pub fn query(outcome: std::result::Result<String, String>) -> String {
        let pair = match outcome {
            Ok(done) => ("done", done),
            Err(problem) => ("error", problem),
        };
        serde_urlencoded::to_string([pair]).unwrap_or_default()
    }

    pub fn render(&self) -> Markup {
        html! {
            @if !self.done.is_empty() { p.notice role="status" { "Done: " (self.done) "." } }
            @if !self.error.is_empty() { p.error role="alert" { (self.error) } }
        }
    }
}

/// An amount in minor units, in its currency's major units: `INR 1,234.50`.
pub fn money(minor: i64, currency: &str) -> String {
    let exponent = Currency::parse(currency).map_or(2, Currency::exponent);
    let unit = 10i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let (major, rest) = (
        minor.unsigned_abs() / unit as u64,
        minor.unsigned_abs() % unit as u64,
    );
    let digits = major.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if exponent == 0 {
        format!("{currency} {sign}{grouped}")
    } else {
        format!(
            "{currency} {sign}{grouped}.{rest:0width$}",
            width = exponent as usize
        )
    }
}

/// Unix milliseconds as `2026-11-29 08:46:36 UTC`.
pub fn time(ms: i64) -> String {
    rfc3339(ms).replace('T', " ").replace('Z', " UTC")
}

/// A status as a badge its colour class names.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status.replace('_', " ")) } }
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn amounts_read_in_major_units() {
        assert_eq!(money(123_450, "INR"), "INR 1,234.50");
        assert_eq!(money(5, "INR"), "INR 0.05");
        assert_eq!(money(-100_000_000, "USD"), "USD -1,000,000.00");
        assert_eq!(money(1500, "JPY"), "JPY 1,500");
    }
}
