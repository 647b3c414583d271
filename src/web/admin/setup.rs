//! What the merchant set up, and what went out: coupons with their use counts, the tax
//! settings and codes, merchant webhook endpoints with their delivery log, the event
//! stream, and an event's redelivery (`notify::webhooks::redeliver`, as `POST
//! /v1/events/{id}/redeliver`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sqlx::Connection;

use super::page::{self, badge, money, time, Notice, Page};
use super::session::Console;
use super::Form;
use crate::error::{Error, Result};
use crate::notify::store::Position;
use crate::notify::{self, webhooks};
use crate::pricing::coupon::Kind;
use crate::pricing::store;
use crate::state::AppState;

/// Rows on one page of a list.
const PAGE_SIZE: i64 = 100;
/// Deliveries shown for one endpoint.
const DELIVERIES_SHOWN: i64 = 50;

#[derive(Deserialize, Default)]
pub struct After {
    #[serde(default)]
    after: String,
}

/// `GET /admin/coupons`
pub async fn coupons(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<After>,
) -> Result<Page> {
    let mut conn = state.db.pool.acquire().await?;
    let mut rows = Vec::new();
    for code in store::coupon_codes(&mut conn, &query.after, PAGE_SIZE).await? {
        if let Some(coupon) = store::get_coupon(&mut conn, &code).await? {
            rows.push(coupon);
        }
    }
    let currency = state.currency.code();
    let body = html! {
        table.coupons {
            thead { tr { th { "Code" } th { "Discount" } th { "Active" } th { "Valid" } th.num { "Used" } th.num { "Reserved" } th.num { "Limit" } th.num { "Per customer" } } }
            tbody {
                @for c in &rows {
                    tr data-code=(c.coupon.code) {
                        td { code { (c.coupon.code) } }
                        td {
                            @match &c.coupon.kind {
                                Kind::Percent { percent_off, max_discount } => {
                                    (percent_off) "% off"
                                    @if let Some(max) = max_discount { ", at most " (money(*max, currency)) }
                                }
                                Kind::Fixed { amount_off } => { (money(*amount_off, currency)) " off" }
                            }
                            @if let Some(min) = c.coupon.min_subtotal { "; from " (money(min, currency)) }
                            @if !c.coupon.skus.is_empty() {
                                "; on " (c.coupon.skus.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
                            }
                        }
                        td { @if c.coupon.active { "yes" } @else { "no" } }
                        td {
                            @if let Some(from) = c.coupon.starts_at { "from " (time(from)) " " }
                            @if let Some(to) = c.coupon.ends_at { "until " (time(to)) }
                        }
                        td.num.used { (c.confirmed) }
                        td.num { (c.reserved) }
                        td.num { (c.max_uses.map(|m| m.to_string()).unwrap_or_default()) }
                        td.num { (c.max_uses_per_customer.map(|m| m.to_string()).unwrap_or_default()) }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No coupons yet: add them with " code { "PUT /v1/coupons/{code}" } "." } }
        @if rows.len() as i64 == PAGE_SIZE {
            @if let Some(last) = rows.last() {
                nav.pages aria-label="Pages" { a href={ "/admin/coupons?after=" (last.coupon.code) } { "More" } }
            }
        }
    };
    Ok(page::console(
        "Coupons",
        "/admin/coupons",
        &console.csrf(),
        body,
    ))
}

/// `GET /admin/tax`
pub async fn tax(State(state): State<AppState>, console: Console) -> Result<Page> {
    let mut conn = state.db.pool.acquire().await?;
    let settings = store::get_tax_settings(&mut conn).await?;
    let mut codes = Vec::new();
    for name in store::tax_code_names(&mut conn, "", PAGE_SIZE).await? {
        if let Some(code) = store::get_tax_code(&mut conn, &name).await? {
            codes.push((name, code));
        }
    }
    let body = html! {
        section aria-labelledby="settings" {
            h2 #settings { "Seller" }
            @if let Some(s) = &settings {
                dl {
                    dt { "Ships from" } dd { (s.origin.country) @if let Some(r) = &s.origin.region { " / " (r) } }
                    dt { "Prices" } dd { @if s.prices_include_tax { "include tax" } @else { "exclude tax" } }
                    dt { "GSTIN" } dd { (s.gstin.as_deref().unwrap_or("none")) }
                    dt { "Legal name" } dd { (s.legal_name.as_deref().unwrap_or("")) }
                    dt { "Address" } dd { (s.address.as_deref().unwrap_or("")) }
                }
            } @else {
                p { "No tax settings: prices carry no tax. Set them with " code { "PUT /v1/settings/tax" } "." }
            }
        }
        section aria-labelledby="codes" {
            h2 #codes { "Tax codes" }
            table {
                thead { tr { th { "Code" } th { "HSN" } th { "Rates" } } }
                tbody {
                    @for (name, code) in &codes {
                        tr {
                            td { code { (name) } }
                            td { (code.hsn.as_deref().unwrap_or("")) }
                            td {
                                @for r in &code.rates {
                                    (r.country) @if let Some(region) = &r.region { "/" (region) } ": "
                                    (r.rate_bps / 100) "." (format!("{:02}", r.rate_bps % 100)) "%"
                                    @if let Some(n) = &r.name { " " (n) }
                                    br;
                                }
                            }
                        }
                    }
                }
            }
            @if codes.is_empty() { p { "No tax codes." } }
        }
    };
    Ok(page::console("Tax", "/admin/tax", &console.csrf(), body))
}

/// `GET /admin/webhooks`
pub async fn webhooks(State(state): State<AppState>, console: Console) -> Result<Page> {
    let mut conn = state.db.pool.acquire().await?;
    let endpoints = webhooks::live_endpoints(&mut conn).await?;
    let body = html! {
        table.endpoints {
            thead { tr { th { "Endpoint" } th { "URL" } th { "Events" } th { "Created" } } }
            tbody {
                @for e in &endpoints {
                    tr {
                        td { a href={ "/admin/webhooks/" (e.id) } { code { (e.id) } } }
                        td { (e.url) }
                        td { (e.filter.names().join(", ")) }
                        td { (time(e.created_at)) }
                    }
                }
            }
        }
        @if endpoints.is_empty() { p { "No webhook endpoints: add one with " code { "POST /v1/webhook_endpoints" } "." } }
    };
    Ok(page::console(
        "Webhooks",
        "/admin/webhooks",
        &console.csrf(),
        body,
    ))
}

/// `GET /admin/webhooks/{id}`: an endpoint's latest deliveries and their attempts.
pub async fn deliveries(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response> {
    let mut conn = state.db.pool.acquire().await?;
    let Some(endpoint) = webhooks::endpoint(&mut conn, &id).await? else {
        return Ok(page::message(
            StatusCode::NOT_FOUND,
            "No such endpoint",
            "There is no webhook endpoint with this id.",
        ));
    };
    let log = webhooks::deliveries(&mut conn, &id, DELIVERIES_SHOWN).await?;
    let csrf = console.csrf();
    let body = html! {
        (notice.render())
        p { (endpoint.url) " · " (endpoint.filter.names().join(", ")) }
        table.deliveries {
            thead { tr { th { "Delivery" } th { "Event" } th { "Status" } th { "Attempts" } th { "Next attempt" } th { "Redeliver" } } }
            tbody {
                @for d in &log {
                    tr {
                        td { code { (d.id) } }
                        td { code { (d.event_id) } }
                        td { (badge(d.status.as_str())) }
                        td {
                            @for a in &d.attempts {
                                "#" (a.attempt) " " (time(a.at)) ": "
                                @if let Some(code) = a.status_code { (code) } @else { (a.error.as_deref().unwrap_or("no answer")) }
                                " (" (a.duration_ms) " ms)" br;
                            }
                        }
                        td { @if let Some(next) = d.next_attempt_at { (time(next)) } }
                        td {
                            form method="post" action={ "/admin/events/" (d.event_id) "/redeliver" } {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="endpoint" value=(endpoint.id);
                                button type="submit" { "Send again" }
                            }
                        }
                    }
                }
            }
        }
        @if log.is_empty() { p { "Nothing delivered to this endpoint yet." } }
        p { a href="/admin/webhooks" { "All endpoints" } }
    };
    Ok(page::console(
        &format!("Endpoint {}", endpoint.id),
        "/admin/webhooks",
        &csrf,
        body,
    )
    .into_response())
}

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    /// The position of the last event on the previous page.
    #[serde(default)]
    after: i64,
}

/// `GET /admin/events`: the event stream in its order, a page at a time.
pub async fn events(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<EventsQuery>,
    Query(notice): Query<Notice>,
) -> Result<Page> {
    let events = notify::after(&state.db, Position(query.after.max(0)), None, PAGE_SIZE).await?;
    let csrf = console.csrf();
    let body = html! {
        (notice.render())
        table.events {
            thead { tr { th { "#" } th { "Event" } th { "Type" } th { "Order" } th { "When" } th { "Redeliver" } } }
            tbody {
                @for e in &events {
                    tr {
                        td.num { (e.position.0) }
                        td { code { (e.id) } }
                        td { (e.kind.as_str()) }
                        td { @if let Some(order) = e.order_id() { a href={ "/admin/orders/" (order) } { code { (order) } } } }
                        td { (time(e.created_at)) }
                        td {
                            form method="post" action={ "/admin/events/" (e.id) "/redeliver" } {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "To all endpoints" }
                            }
                        }
                    }
                }
            }
        }
        @if events.is_empty() { p { "No more events." } }
        @if let Some(last) = events.last() {
            nav.pages aria-label="Pages" { a href={ "/admin/events?after=" (last.position.0) } { "Later events" } }
        }
    };
    Ok(page::console("Events", "/admin/events", &csrf, body))
}

#[derive(Deserialize)]
pub struct RedeliverForm {
    #[serde(default)]
    csrf: String,
    /// One endpoint; empty: every endpoint subscribed to the event's type.
    #[serde(default)]
    endpoint: String,
}

/// `POST /admin/events/{id}/redeliver`
pub async fn redeliver(
    State(state): State<AppState>,
    console: Console,
    Path(event_id): Path<String>,
    Form(form): Form<RedeliverForm>,
) -> Result<Response> {
    if let Err(refused) = console.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    let mut conn = state.db.pool.acquire().await?;
    let Some(event) = notify::get(&mut conn, &event_id).await? else {
        return Ok(page::message(
            StatusCode::NOT_FOUND,
            "No such event",
            "There is no event with this id.",
        ));
    };
    let only = Some(form.endpoint.trim()).filter(|e| !e.is_empty());
    let mut tx = conn.begin().await?;
    let outcome = match webhooks::redeliver(&mut tx, &event, only, state.now_ms()).await {
        Ok(queued) => {
            tx.commit().await?;
            Ok(format!(
                "{} queued again to {} endpoint(s)",
                event.id,
                queued.len()
            ))
        }
        Err(err @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(err),
        Err(err) => Err(err.to_string()),
    };
    // Back to the endpoint's log when it took the delivery (then the id is a real one).
    let back = match (&outcome, only) {
        (Ok(_), Some(endpoint)) => format!("/admin/webhooks/{endpoint}"),
        _ => "/admin/events".to_string(),
    };
    Ok(Redirect::to(&format!("{back}?{}", Notice::query(outcome))).into_response())
}
