//! Paying from the order's page: a form per method (card, UPI collect or intent, wallet),
//! each starting a payment attempt through the saga exactly as `POST
//! /v1/orders/{id}/payments` does with the order's client secret, and cancelling. The test
//! cards and wallets are the simulator's (docs/api.md); Stripe's test mode takes the same
//! `pm_card_…` names.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::order::{answer, authorized, render};
use crate::checkout::{self, PaymentInput};
use crate::error::{Error, Result};
use crate::ids::OrderId;
use crate::payments::{Method, NextAction};
use crate::state::AppState;
use crate::web::{csrf, layout, see_other};

/// The test cards offered: source, label.
const CARDS: &[(&str, &str)] = &[
    ("pm_card_visa", "Visa ending 4242 (succeeds)"),
    ("pm_card_mastercard", "Mastercard ending 4444 (succeeds)"),
    (
        "pm_card_authenticationRequired",
        "Visa ending 3184 (asks for 3-D Secure)",
    ),
    ("pm_card_chargeDeclined", "Visa ending 0002 (declined)"),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "Visa ending 9995 (insufficient funds)",
    ),
];

/// The wallets offered: source, label.
const WALLETS: &[(&str, &str)] = &[
    ("paytm", "Paytm"),
    ("phonepe", "PhonePe"),
    ("amazonpay", "Amazon Pay"),
    ("wallet_declined", "Test wallet (declines)"),
];

/// The payment forms of a pending order with no payment in flight.
pub fn forms(state: &AppState, order_id: &str, token: &str) -> Markup {
    let action = format!("/shop/orders/{order_id}/pay");
    let upi_intent = state
        .gateway_for(Method::Upi)
        .is_ok_and(|g| g.name() == "razorpay");
    html! {
        h2 { "Pay" }
        @if let Some(key) = stripe_js(state) {
            (stripe_card_form(&action, token, key))
        } @else {
        form.card method="post" action=(action) {
            (layout::csrf_field(token))
            input type="hidden" name="method" value="card";
            fieldset {
                legend { "Card (test cards)" }
                @for (i, (source, label)) in CARDS.iter().enumerate() {
                    div {
                        input #(format!("card-{source}")) type="radio" name="source" value=(source) checked[i == 0];
                        label.inline for=(format!("card-{source}")) { " " (label) }
                    }
                }
            }
            button type="submit" { "Pay by card" }
        }
        }
        form.card method="post" action=(action) {
            (layout::csrf_field(token))
            input type="hidden" name="method" value="upi";
            label for="vpa" { "UPI ID (VPA)" }
            p #vpa-hint .muted { "For example name@bank. Test IDs: success@razorpay, failure@razorpay." }
            input #vpa type="text" name="source" autocomplete="off" placeholder="name@bank" aria-describedby="vpa-hint" required;
            p { button type="submit" { "Send a UPI payment request" } }
        }
        @if upi_intent {
            form.card method="post" action=(action) {
                (layout::csrf_field(token))
                input type="hidden" name="method" value="upi";
                input type="hidden" name="source" value="upi_intent";
                button type="submit" { "Pay with a UPI app (QR code)" }
            }
        }
        form.card method="post" action=(action) {
            (layout::csrf_field(token))
            input type="hidden" name="method" value="wallet";
            label for="wallet" { "Wallet" }
            select #wallet name="source" {
                @for (source, label) in WALLETS { option value=(source) { (label) } }
            }
            p { button type="submit" { "Pay with wallet" } }
        }
        form method="post" action=(format!("/shop/orders/{order_id}/cancel")) {
            (layout::csrf_field(token))
            button.secondary type="submit" { "Cancel the order" }
        }
    }
}

/// Stripe's publishable key when the card form uses Stripe.js: real Stripe takes the cards.
pub fn stripe_js(state: &AppState) -> Option<&str> {
    let stripe_cards = state
        .gateway_for(Method::Card)
        .is_ok_and(|g| g.name() == "stripe");
    state
        .stripe_publishable_key
        .as_deref()
        .filter(|_| stripe_cards)
}

/// What a page with Stripe.js may load besides Till's own: Stripe's script, its card field's
/// frames and its API.
pub const STRIPE_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: https://*.stripe.com; \
     script-src 'self' https://js.stripe.com; frame-src https://js.stripe.com https://hooks.stripe.com; \
     connect-src 'self' https://api.stripe.com; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The card form with Stripe's card field: Stripe.js turns the card into a PaymentMethod
/// (`pm_…`) in the browser, and the form sends only that id. The card number never reaches
/// Till. (Stripe.js needs the internet, so this form is not part of the browser tests.)
fn stripe_card_form(action: &str, token: &str, key: &str) -> Markup {
    html! {
        script src="https://js.stripe.com/v3/" {}
        form.card method="post" action=(action) data-stripe-key=(key) {
            (layout::csrf_field(token))
            input type="hidden" name="method" value="card";
            input type="hidden" name="source" value="";
            label for="card-element" { "Card" }
            div #card-element {}
            p #card-errors .error role="alert" {}
            button type="submit" { "Pay by card" }
        }
    }
}

/// The simulator's 3-D Secure page takes the page to send the customer back to; a real
/// gateway's page returns to its own configured URL.
pub fn with_return(url: &str, order_id: &str) -> String {
    if url.contains("/sim/3ds/") && !url.contains('?') {
        format!("{url}?return_to=/shop/orders/{order_id}")
    } else {
        url.to_string()
    }
}

#[derive(Deserialize)]
struct PayForm {
    csrf: String,
    method: String,
    source: String,
}

#[derive(Deserialize)]
struct CancelForm {
    csrf: String,
}

/// `POST /shop/orders/{id}/pay`: starts the attempt; 3-D Secure goes to the bank's page,
/// everything else back to the order's page, which follows the payment.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let page = format!("/shop/orders/{id}");
    let started = async {
        let form: PayForm =
            serde_urlencoded::from_bytes(&body).map_err(|_| Error::invalid("choose how to pay"))?;
        csrf::check(&headers, &form.csrf)?;
        authorized(&state, &headers, &id).await?;
        let method =
            Method::parse(&form.method).ok_or_else(|| Error::invalid("choose how to pay"))?;
        let source = form.source.trim().to_string();
        if source.is_empty() {
            return Err(Error::invalid(match method {
                Method::Upi => "enter your UPI ID",
                _ => "enter your card's details",
            }));
        }
        let input = PaymentInput {
            key: None,
            order_id: OrderId::from(id.as_str()),
            method,
            source,
            expected_amount_minor: None,
        };
        checkout::start_payment(&state, input).await
    }
    .await;
    match started {
        Ok(payment) => match &payment.next_action {
            Some(NextAction::RedirectToUrl { redirect_url })
            | Some(NextAction::UseStripeSdk { redirect_url, .. }) => {
                see_other(&with_return(redirect_url, &id))
            }
            _ => see_other(&page),
        },
        Err(err) if err.status().is_client_error() && err.status() != StatusCode::NOT_FOUND => {
            problem(&state, &headers, &id, err).await
        }
        Err(err) => super::error_page(err),
    }
}

/// `POST /shop/orders/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let cancelled = async {
        let form: CancelForm = serde_urlencoded::from_bytes(&body)
            .map_err(|_| Error::invalid("the form did not parse"))?;
        csrf::check(&headers, &form.csrf)?;
        authorized(&state, &headers, &id).await?;
        checkout::cancel_order(&state, &OrderId::from(id.as_str())).await
    }
    .await;
    match cancelled {
        Ok(_) => see_other(&format!("/shop/orders/{id}")),
        Err(err) if err.status().is_client_error() && err.status() != StatusCode::NOT_FOUND => {
            problem(&state, &headers, &id, err).await
        }
        Err(err) => super::error_page(err),
    }
}

/// The order's page again with what went wrong above its forms.
async fn problem(state: &AppState, headers: &HeaderMap, id: &str, err: Error) -> Response {
    let result: Result<Response> = async {
        let order = authorized(state, headers, id).await?;
        let (token, set_cookie) = csrf::token(headers);
        let markup = render(state, &order, &token, Some(&err.to_string())).await?;
        Ok(answer(state, err.status(), set_cookie, markup))
    }
    .await;
    result.unwrap_or_else(super::error_page)
}
