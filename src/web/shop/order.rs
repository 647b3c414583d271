//! The order's page (`/shop/orders/{id}`): its state in words, the hold's countdown, the
//! ways to pay while it is pending, what the customer must do for a payment in flight (3-D
//! Secure, a UPI app), its figures and payments, and the invoice once it is confirmed. It
//! opens only with the order's client secret (the `till_order` cookie the checkout set):
//! any other order answers 404, as the API does.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};

use super::cart::Cart;
use super::figures::{self, Figures};
use super::{product_names, respond, SITE};
use crate::checkout::{self, OrderView};
use crate::error::{Error, Result};
use crate::orders;
use crate::payments::{Method, NextAction, PaymentView};
use crate::pricing;
use crate::state::AppState;
use crate::web::{csrf, layout};

const COOKIE: &str = "till_order";
/// The client secret is kept for 30 days: the status page and invoice stay reachable.
const MAX_AGE_SECS: u32 = 30 * 24 * 3600;

/// The `Set-Cookie` that gives the browser an order's client secret, sent back only for that
/// order's pages (its path), so each order a browser placed keeps its own. `HttpOnly` (no
/// script reads it), `SameSite=Lax` (a gateway's 3-D Secure page may send the customer back).
pub fn secret_cookie(order_id: &str, secret: &str) -> HeaderValue {
    let value = format!(
        "{COOKIE}={secret}; Path=/shop/orders/{order_id}; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Lax"
    );
    HeaderValue::from_str(&value).expect("a client secret is a valid header value")
}

/// The order `id` as the request's client secret opens it; any other order is not found.
pub async fn authorized(state: &AppState, headers: &HeaderMap, id: &str) -> Result<OrderView> {
    let secret = csrf::cookie(headers, COOKIE).ok_or(Error::NotFound("order"))?;
    let mut conn = state.db.pool.acquire().await?;
    orders::secret_holder(&mut conn, secret)
        .await?
        .filter(|head| head.id.as_str() == id)
        .ok_or(Error::NotFound("order"))?;
    checkout::order_view(&mut conn, id)
        .await?
        .ok_or(Error::NotFound("order"))
}

/// The latest payment attempt still in flight, if any.
fn in_flight(order: &OrderView) -> Option<&PaymentView> {
    order.payments.last().filter(|p| {
        matches!(
            p.status.as_str(),
            "processing" | "requires_action" | "authorized"
        )
    })
}

/// What the page shows, in one word pair: the page reloads when this changes.
fn watch_state(order: &OrderView) -> String {
    let payment = order.payments.last().map_or("none", |p| p.status.as_str());
    format!("{}:{payment}", order.record.status)
}

/// `GET /shop/orders/{id}`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let order = authorized(&state, &headers, &id).await?;
        let (token, set_cookie) = csrf::token(&headers);
        let markup = render(&state, &order, &token, None).await?;
        let mut response = answer(&state, StatusCode::OK, set_cookie, markup);
        if order.record.status == "confirmed" {
            // Bought: the cart is done with.
            response
                .headers_mut()
                .append(header::SET_COOKIE, Cart::default().cookie());
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(super::error_page)
}

/// The order's page as an answer; with Stripe.js on its card form, a policy that lets
/// Stripe's script and frames in.
pub fn answer(
    state: &AppState,
    status: StatusCode,
    set_cookie: Option<HeaderValue>,
    markup: Markup,
) -> Response {
    let mut response = respond(status, set_cookie, markup);
    if super::pay::stripe_js(state).is_some() {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(super::pay::STRIPE_CONTENT_SECURITY_POLICY),
        );
    }
    response
}

/// `GET /shop/orders/{id}/status`: what the page shows, for the page to reload on a change.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match authorized(&state, &headers, &id).await {
        Ok(order) => {
            let body =
                serde_json::json!({"status": order.record.status, "state": watch_state(&order)});
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// `GET /shop/orders/{id}/invoice.pdf`: the tax invoice of a confirmed order.
pub async fn invoice(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        authorized(&state, &headers, &id).await?;
        let mut conn = state.db.pool.acquire().await?;
        let pdf = checkout::invoice_pdf(&mut conn, &id.as_str().into())
            .await?
            .ok_or(Error::InvoiceNotIssued("the order is not confirmed yet"))?;
        let disposition = format!("inline; filename=\"invoice-{id}.pdf\"");
        Ok::<_, Error>(
            (
                [
                    (header::CONTENT_TYPE, "application/pdf".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                pdf,
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(super::error_page)
}

/// The whole page; `problem` is what went wrong with the last form, shown above the forms.
pub async fn render(
    state: &AppState,
    order: &OrderView,
    token: &str,
    problem: Option<&str>,
) -> Result<Markup> {
    let r = &order.record;
    let mut conn = state.db.pool.acquire().await?;
    let names = product_names(&mut conn, r.items.iter().map(|l| l.sku.as_str())).await?;
    let inclusive = pricing::store::get_tax_settings(&mut conn)
        .await?
        .is_some_and(|t| t.prices_include_tax);
    drop(conn);
    let pending = r.status == "pending";
    let main = html! {
        div data-watch=[pending.then(|| format!("/shop/orders/{}/status", r.id))] data-state=(watch_state(order)) {
            h1 { "Order " (r.id) }
            p { "Status: " span.status.(r.status) #status { (r.status) } }
            (outcome(order))
            @if let Some(problem) = problem {
                p #problem .notice.bad role="alert" { (problem) }
            }
            @if pending {
                p { "Your items are held for you for " span.countdown data-expires=(r.expires_at) { "a while" } " (until " (r.expires_at.replace('T', " ").replace('Z', " UTC")) ")." }
                p.price { "To pay: " (super::money(r.total, state.currency)) }
                @match in_flight(order) {
                    Some(payment) => (payment_in_flight(order, payment)),
                    None => (super::pay::forms(state, &r.id, token)),
                }
            }
            h2 { "Items" }
            (figures::table(&Figures {
                currency: state.currency,
                items: &r.items,
                names: &names,
                subtotal: r.subtotal,
                discount: r.discount,
                coupon: r.coupon.as_deref(),
                tax_lines: &r.tax_lines,
                total: r.total,
                inclusive,
            }))
            @if let Some(to) = &r.ship_to {
                h2 { "Shipping to" }
                p {
                    @if let Some(c) = &r.customer { @if let Some(name) = &c.name { (name) br; } }
                    @for part in [&to.line1, &to.city, &to.region, &to.postal_code].into_iter().flatten() { (part) ", " }
                    (to.country)
                }
            }
            @if !order.payments.is_empty() {
                h2 { "Payments" }
                ul {
                    @for p in &order.payments {
                        li { (p.method) " — " (p.status) @if let Some(code) = &p.failure_code { " (" (code) ")" } }
                    }
                }
            }
        }
    };
    Ok(layout::page(&SITE, &format!("Order {}", r.id), "", main))
}

/// The order's state in words, for every status.
fn outcome(order: &OrderView) -> Markup {
    let r = &order.record;
    let declined = order
        .payments
        .last()
        .and_then(|p| p.failure_code.clone())
        .unwrap_or_else(|| "declined".into());
    let invoice = format!("/shop/orders/{}/invoice.pdf", r.id);
    html! {
        @match (r.status.as_str(), r.cancel_reason.as_deref()) {
            ("pending", _) => {}
            ("confirmed", _) => div.notice.ok role="status" {
                p { strong { "Thank you! Your order is confirmed." } }
                @if let Some(number) = &r.invoice_number {
                    p { "Invoice " (number) ": " a href=(invoice) { "download the invoice (PDF)" } }
                }
            },
            ("cancelled", Some("payment_failed")) => div.notice.bad role="status" {
                p { strong { "The payment failed (" (declined) ")." } " Nothing was charged; the order is cancelled and its items are back on sale." }
                p { a href="/shop/cart" { "Try again with another payment method" } }
            },
            ("cancelled", _) => div.notice.bad role="status" {
                p { strong { "This order was cancelled." } " Its items are back on sale." }
            },
            ("expired", _) => div.notice.warn role="status" {
                p { strong { "This order expired:" } " the hold on its items ran out before a payment arrived. Nothing was charged, and the items are back on sale." }
                p { a href="/shop/cart" { "Check out again" } }
            },
            (_, _) => div.notice role="status" {
                p { "This order was " (r.status.replace('_', " ")) "." }
                @if r.invoice_number.is_some() { p { a href=(invoice) { "Download the invoice (PDF)" } } }
            },
        }
    }
}

/// What the customer does for a payment in flight: authenticate, open a UPI app, or wait.
fn payment_in_flight(order: &OrderView, payment: &PaymentView) -> Markup {
    html! {
        div.card role="status" {
            @match &payment.next_action {
                Some(NextAction::RedirectToUrl { redirect_url }) | Some(NextAction::UseStripeSdk { redirect_url, .. }) => {
                    p { "Your bank asks you to confirm this payment (3-D Secure)." }
                    p { a.button href=(super::pay::with_return(redirect_url, &order.record.id)) { "Confirm the payment with your bank" } }
                }
                Some(NextAction::UpiIntent { upi_url, .. }) => {
                    p { "Scan the code with any UPI app, or open the app on this phone." }
                    div.qr { (qr_svg(upi_url)) }
                    p { a.button href=(upi_url) { "Open a UPI app" } }
                }
                None if Method::parse(&payment.method) == Some(Method::Upi) => {
                    p { "We sent a payment request to your UPI app. Approve it there; this page updates by itself." }
                }
                None => p { "Waiting for the payment to be confirmed; this page updates by itself." },
            }
            noscript { p { "Reload this page to see the payment's progress." } }
        }
    }
}

/// A QR code of `text` as inline SVG (drawn here from the text; no data from elsewhere).
fn qr_svg(text: &str) -> Markup {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(192, 192)
                .build();
            // The renderer writes only its own elements and numbers: nothing of `text`.
            let body = svg.split_once("?>").map_or(svg.as_str(), |(_, rest)| rest);
            html! { span role="img" aria-label="UPI payment QR code" { (PreEscaped(body)) } }
        }
        Err(_) => html! { p { "The QR code could not be drawn; use the button below." } },
    }
}
