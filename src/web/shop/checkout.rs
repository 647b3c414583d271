//! The cart page and its checkout: the cart's lines with their quantities, the customer's
//! details and shipping address (India's states in a picker, other countries allowed), the
//! coupon, and the summary priced exactly as the order will be (`checkout::quote`, the
//! saga's own pricing). `POST /shop/quote` answers the summary alone, for the live update;
//! `POST /shop/checkout` creates the order and hands its client secret to the browser.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::cart::{Cart, QTY_MAX};
use super::details::{self, Details};
use super::figures::{self, Figures};
use super::{order, product_names, respond, SITE};
use crate::checkout;
use crate::error::{Error, Result};
use crate::pricing;
use crate::state::AppState;
use crate::web::{csrf, layout};

/// The summary's figures, or what stops them: a coupon that does not apply is shown beside
/// the coupon field and the cart priced without it.
struct Summary {
    quote: Option<checkout::QuoteView>,
    coupon_error: Option<String>,
    error: Option<String>,
}

async fn summary(state: &AppState, cart: &Cart, details: &Details) -> Result<Summary> {
    let mut result = Summary {
        quote: None,
        coupon_error: None,
        error: None,
    };
    if cart.lines.is_empty() {
        return Ok(result);
    }
    let input = match details.input(cart, false) {
        Ok(input) => input,
        Err(Error::InvalidRequest(message)) => {
            result.error = Some(message);
            return Ok(result);
        }
        Err(err) => return Err(err),
    };
    let with_coupon = details.input(cart, false)?.with_coupon(details.coupon());
    let quoted = match with_coupon {
        Ok(with_coupon) => checkout::quote(state, &with_coupon).await,
        Err(err) => Err(err),
    };
    match quoted {
        Ok(quote) => result.quote = Some(quote),
        Err(
            err @ (Error::CouponInvalid { .. }
            | Error::CouponExhausted(_)
            | Error::InvalidRequest(_)),
        ) if details.coupon().is_some() => {
            result.coupon_error = Some(err.to_string());
            result.quote = Some(checkout::quote(state, &input).await?);
        }
        Err(Error::InvalidRequest(message)) => result.error = Some(message),
        Err(err) => return Err(err),
    }
    Ok(result)
}

async fn summary_markup(state: &AppState, s: &Summary) -> Result<Markup> {
    let mut conn = state.db.pool.acquire().await?;
    let inclusive = pricing::store::get_tax_settings(&mut conn)
        .await?
        .is_some_and(|t| t.prices_include_tax);
    let names = match &s.quote {
        Some(q) => product_names(&mut conn, q.items.iter().map(|l| l.sku.as_str())).await?,
        None => Vec::new(),
    };
    Ok(html! {
        @if let Some(message) = &s.coupon_error {
            p #coupon-error .error role="alert" { (message) }
        }
        @if let Some(message) = &s.error {
            p.error role="alert" { (message) }
        }
        @if let Some(q) = &s.quote {
            (figures::table(&Figures {
                currency: state.currency,
                items: &q.items,
                names: &names,
                subtotal: q.subtotal,
                discount: q.discount,
                coupon: q.coupon.as_deref(),
                tax_lines: &q.tax_lines,
                total: q.total,
                inclusive,
            }))
        }
    })
}

/// `GET /shop/cart`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let details = Details::default();
    render(&state, &headers, &details, StatusCode::OK, None)
        .await
        .unwrap_or_else(super::error_page)
}

/// `POST /shop/quote`: the summary for the form as it stands, for the live update.
pub async fn quote(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let details = Details::parse(&body)?;
        csrf::check(&headers, &details.csrf)?;
        let s = summary(&state, &Cart::of(&headers), &details).await?;
        summary_markup(&state, &s).await
    }
    .await;
    match result {
        Ok(markup) => crate::web::html(StatusCode::OK, markup),
        Err(err) => super::error_page(err),
    }
}

/// `POST /shop/checkout`: places the order, or shows the form again with what to fix.
pub async fn submit(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let details = match Details::parse(&body) {
        Ok(details) => details,
        Err(err) => return super::error_page(err),
    };
    if let Err(err) = csrf::check(&headers, &details.csrf) {
        return super::error_page(err);
    }
    let cart = Cart::of(&headers);
    let placed = async {
        if cart.lines.is_empty() {
            return Err(Error::invalid("your cart is empty"));
        }
        let input = details.input(&cart, true)?.with_coupon(details.coupon())?;
        checkout::create_order(&state, input, None).await
    }
    .await;
    let problem = match placed {
        Ok(view) => {
            let secret = view.client_secret.unwrap_or_default();
            let mut response = crate::web::see_other(&format!("/shop/orders/{}", view.record.id));
            response.headers_mut().append(
                header::SET_COOKIE,
                order::secret_cookie(&view.record.id, &secret),
            );
            return response;
        }
        Err(Error::OutOfStock(skus)) => (
            StatusCode::CONFLICT,
            format!(
                "Not enough stock left of {}; change the quantity and try again.",
                skus.join(", ")
            ),
        ),
        Err(err @ (Error::CouponInvalid { .. } | Error::CouponExhausted(_))) => {
            (StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
        Err(err) if err.status().is_client_error() => (err.status(), err.to_string()),
        Err(err) => return super::error_page(err),
    };
    render(&state, &headers, &details, problem.0, Some(problem.1))
        .await
        .unwrap_or_else(super::error_page)
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    details: &Details,
    status: StatusCode,
    problem: Option<String>,
) -> Result<Response> {
    let cart = Cart::of(headers);
    let (token, set_cookie) = csrf::token(headers);
    let s = summary(state, &cart, details).await?;
    let summary = summary_markup(state, &s).await?;
    let mut conn = state.db.pool.acquire().await?;
    let names = product_names(&mut conn, cart.lines.iter().map(|(sku, _)| sku.as_str())).await?;
    let origin = pricing::store::get_tax_settings(&mut conn)
        .await?
        .and_then(|t| t.origin.region);
    drop(conn);
    let main = html! {
        h1 { "Your cart" }
        @if cart.lines.is_empty() {
            p { "Your cart is empty. " a href="/shop" { "Browse the products" } "." }
        } @else {
            (cart_lines(&cart, &names, &token))
            @if let Some(problem) = &problem {
                p #problem .notice.bad role="alert" { (problem) }
            }
            div.columns {
                (details::form(details, &token, origin.as_deref()))
                section.card aria-labelledby="summary-title" {
                    h2 #summary-title { "Order summary" }
                    label for="coupon" { "Coupon code" }
                    div.row {
                        input #coupon type="text" name="coupon" form="checkout" value=(details.coupon) autocomplete="off" aria-describedby="coupon-error";
                        button #apply-coupon .secondary type="submit" form="checkout" formaction="/shop/cart/review" { "Apply" }
                    }
                    div #quote aria-live="polite" { (summary) }
                    button type="submit" form="checkout" { "Place order" }
                }
            }
        }
    };
    Ok(respond(
        status,
        set_cookie,
        layout::page(&SITE, "Your cart", "/shop/cart", main),
    ))
}

/// `POST /shop/cart/review`: the page again with the form as sent (the coupon's Apply
/// button without JavaScript).
pub async fn review(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let details = Details::parse(&body)?;
        csrf::check(&headers, &details.csrf)?;
        render(&state, &headers, &details, StatusCode::OK, None).await
    }
    .await;
    result.unwrap_or_else(super::error_page)
}

fn cart_lines(cart: &Cart, names: &[(String, String)], token: &str) -> Markup {
    html! {
        ul.card role="list" aria-label="Cart" {
            @for (sku, qty) in &cart.lines {
                @let name = names.iter().find(|(s, _)| s == sku.as_str()).map_or(sku.as_str(), |(_, n)| n.as_str());
                @let id = format!("cart-qty-{}", sku.as_str());
                li {
                    form.row method="post" action="/shop/cart" {
                        (layout::csrf_field(token))
                        input type="hidden" name="sku" value=(sku.as_str());
                        div { strong { (name) } " " span.muted { (sku.as_str()) } }
                        div {
                            label for=(id) { "Quantity of " (name) }
                            input #(id) type="number" name="qty" value=(qty) min="0" max=(QTY_MAX) required;
                        }
                        div { button.secondary type="submit" { "Update" } }
                    }
                }
            }
        }
    }
}
