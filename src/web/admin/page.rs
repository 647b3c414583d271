//! The console's page frame (the shared layout with the console's navigation, and a
//! sign-out form on every signed-in page) and the small pieces every page uses: amounts,
//! times, status badges, notices after a form.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use crate::clock::rfc3339;
use crate::money::Currency;
use crate::web::layout::{self, Site};

/// The console's frame: its sections, in the navigation's order.
const SITE: Site = Site {
    name: "Till console",
    home: "/admin",
    nav: &[
        ("/admin", "Dashboard"),
        ("/admin/orders", "Orders"),
        ("/admin/inventory", "Inventory"),
        ("/admin/coupons", "Coupons"),
        ("/admin/tax", "Tax"),
        ("/admin/webhooks", "Webhooks"),
        ("/admin/events", "Events"),
    ],
    script: None,
};

/// The frame before signing in: no sections to go to yet.
const SIGNED_OUT: Site = Site {
    name: "Till console",
    home: "/admin",
    nav: &[],
    script: None,
};

/// An HTML page of the console, with its status.
pub struct Page {
    status: StatusCode,
    markup: Markup,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        crate::web::html(self.status, self.markup)
    }
}

/// A signed-in page: the navigation (with `active` marked), the sign-out form, the body.
pub fn console(title: &str, active: &str, csrf: &str, body: Markup) -> Page {
    let main = html! {
        form.sign-out method="post" action="/admin/sign-out" {
            (layout::csrf_field(csrf))
            button.secondary type="submit" { "Sign out" }
        }
        h1 { (title) }
        (body)
    };
    Page {
        status: StatusCode::OK,
        markup: layout::page(&SITE, title, active, html! { div.admin { (main) } }),
    }
}

/// The sign-in page, with what went wrong last time (and then its status).
pub fn sign_in(csrf: &str, error: Option<&str>, status: StatusCode) -> Page {
    let main = html! {
        div.admin.sign-in {
            h1 { "Sign in to the Till console" }
            p { "Use this Till's API key (" code { "TILL_API_KEY" } ", or the one " code { "till serve" } " printed when it generated it)." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/admin/sign-in" {
                (layout::csrf_field(csrf))
                label for="api_key" { "API key" }
                input #api_key type="password" name="api_key" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }
    };
    Page {
        status,
        markup: layout::page(&SIGNED_OUT, "Sign in", "", main),
    }
}

/// A page that only says something (a refusal, a missing record), with its status.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    crate::web::html(status, layout::message(&SITE, title, text))
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
            @if !self.done.is_empty() { p.notice.ok role="status" { "Done: " (self.done) "." } }
            @if !self.error.is_empty() { p.notice.bad role="alert" { (self.error) } }
        }
    }
}

/// An amount as the pages show it (`₹1,05,988.00`), in the currency its code names.
pub fn money(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Some(currency) => crate::documents::format::amount(minor, currency, true),
        None => format!("{minor} {currency}"),
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
