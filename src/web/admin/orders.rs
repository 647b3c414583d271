//! Orders: the list with its search and filters, an order's page (items, taxes, payments,
//! refunds, invoice and credit notes, timeline), and refund and cancel through the same
//! saga functions as `POST /v1/orders/{id}/refunds` and `/cancel`.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{self, badge, money, time, Notice, Page};
use super::session::{Console, CsrfOnly};
use super::Form;
use crate::checkout::store::{search_orders, OrderFilter};
use crate::checkout::{self, OrderView};
use crate::clock::parse_rfc3339;
use crate::error::{Error, Result};
use crate::ids::{random_token, OrderId, RefundId};
use crate::money::Currency;
use crate::orders::{Customer, Status};
use crate::payments::Method;
use crate::state::AppState;
use crate::timeline::{self, EntryView};

/// Orders on one page of the list.
const PAGE_SIZE: i64 = 50;

/// The list's query string: every field optional, empty meaning "any".
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    method: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: i64,
}

const DAY_MS: i64 = 86_400_000;

fn day_start(text: &str) -> Option<i64> {
    parse_rfc3339(&format!("{text}T00:00:00Z"))
}

impl ListQuery {
    /// The filter it asks for, or what is wrong with it.
    fn filter(&self) -> std::result::Result<OrderFilter, String> {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let date = |s: &str, name: &str| match some(s) {
            None => Ok(None),
            Some(d) => day_start(&d)
                .map(Some)
                .ok_or_else(|| format!("{name} must be a date (YYYY-MM-DD)")),
        };
        let status = some(&self.status);
        if status
            .as_deref()
            .is_some_and(|s| Status::parse(s).is_none())
        {
            return Err("status is not an order status".into());
        }
        let method = some(&self.method);
        if method
            .as_deref()
            .is_some_and(|m| Method::parse(m).is_none())
        {
            return Err("method must be card, upi or wallet".into());
        }
        Ok(OrderFilter {
            status,
            from: date(&self.from, "from")?,
            to: date(&self.to, "to")?.map(|d| d + DAY_MS),
            customer: some(&self.q).filter(|q| q.chars().count() <= 200),
            method,
        })
    }
}

/// `GET /admin/orders`
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ListQuery>,
) -> Result<Page> {
    let (orders, problem) = match query.filter() {
        Ok(filter) => {
            let mut conn = state.db.pool.acquire().await?;
            let offset = query.page.clamp(0, 10_000) * PAGE_SIZE;
            (
                search_orders(&mut conn, &filter, PAGE_SIZE + 1, offset).await?,
                None,
            )
        }
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let more = orders.len() as i64 > PAGE_SIZE;
    let body = html! {
        form.filters method="get" action="/admin/orders" role="search" {
            label { "Customer or order" input type="search" name="q" value=(query.q); }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[query.status == s.as_str()] { (s.as_str().replace('_', " ")) }
                    }
                }
            }
            label { "Payment method"
                select name="method" {
                    option value="" { "any" }
                    @for m in Method::ALL {
                        option value=(m.as_str()) selected[query.method == m.as_str()] { (m.as_str()) }
                    }
                }
            }
            label { "From" input type="date" name="from" value=(query.from); }
            label { "To" input type="date" name="to" value=(query.to); }
            button type="submit" { "Filter" }
        }
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        table.orders {
            thead { tr { th { "Order" } th { "Created" } th { "Customer" } th { "Method" } th { "Status" } th.num { "Total" } } }
            tbody {
                @for o in orders.iter().take(PAGE_SIZE as usize) {
                    tr {
                        td { a href={ "/admin/orders/" (o.id) } { code { (o.id) } } }
                        td { (time(o.created_at)) }
                        td { (customer_line(o.customer.as_deref())) }
                        td { (o.methods) }
                        td { (badge(&o.status)) }
                        td.num { (money(o.total, &o.currency)) }
                    }
                }
            }
        }
        @if orders.is_empty() { p { "No orders match." } }
        nav.pages aria-label="Pages" {
            @if query.page > 0 {
                a href=(page_link(&query, query.page - 1)) { "Newer" }
            }
            @if more {
                a href=(page_link(&query, query.page + 1)) { "Older" }
            }
        }
    };
    Ok(page::console(
        "Orders",
        "/admin/orders",
        &console.csrf(),
        body,
    ))
}

fn page_link(query: &ListQuery, page: i64) -> String {
    let pairs = [
        ("q", query.q.as_str()),
        ("status", &query.status),
        ("method", &query.method),
        ("from", &query.from),
        ("to", &query.to),
        ("page", &page.to_string()),
    ];
    format!(
        "/admin/orders?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

/// The customer's email or name or id, from the stored JSON.
fn customer_line(stored: Option<&str>) -> String {
    let Some(customer) = stored.and_then(|s| serde_json::from_str::<Customer>(s).ok()) else {
        return String::new();
    };
    customer
        .email
        .or(customer.name)
        .or(customer.id)
        .unwrap_or_default()
}

/// `GET /admin/orders/{id}`
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<OrderId>,
    Query(notice): Query<Notice>,
) -> Result<Response> {
    let mut conn = state.db.pool.acquire().await?;
    let Some(order) = checkout::order_view(&mut conn, id.as_str()).await? else {
        return Ok(not_found());
    };
    let steps: Vec<EntryView> = timeline::store::for_order(&mut conn, &id)
        .await?
        .into_iter()
        .map(EntryView::from)
        .collect();
    let invoice = checkout::invoice_document(&mut conn, &id).await?;
    let mut notes = Vec::new();
    for refund in &order.refunds {
        let note =
            checkout::credit_note_document(&mut conn, &RefundId::from(refund.id.as_str())).await?;
        notes.push(note.map(|n| n.number));
    }
    let r = &order.record;
    let body = html! {
        (notice.render())
        section.summary {
            dl {
                dt { "Status" } dd { (badge(&r.status)) @if let Some(reason) = &r.cancel_reason { " (" (reason) ")" } }
                dt { "Created" } dd { (r.created_at) }
                dt { "Hold ends" } dd { (r.expires_at) }
                dt { "Customer" } dd { (customer_detail(r.customer.as_ref())) }
                @if let Some(a) = &r.ship_to {
                    dt { "Ship to" }
                    dd { (address_line(a)) }
                }
                dt { "Coupon" } dd { (r.coupon.as_deref().unwrap_or("none")) }
                dt { "Invoice" }
                dd {
                    @if let Some(doc) = &invoice {
                        a href={ "/admin/orders/" (r.id) "/invoice.pdf" } { (doc.number) " (PDF)" }
                    } @else { "not issued" }
                }
            }
        }
        (items(&order))
        (payments(&order, &notes))
        (actions(&order, &console))
        section.timeline aria-labelledby="timeline" {
            h2 #timeline { "Timeline" }
            ol.timeline {
                @for step in &steps {
                    li data-kind=(step.kind) {
                        time { (step.at) } " "
                        strong { (step.kind) } " "
                        code { (detail_text(&step.detail)) }
                    }
                }
            }
        }
        p { a href="/admin/orders" { "All orders" } }
    };
    Ok(page::console(
        &format!("Order {}", r.id),
        "/admin/orders",
        &console.csrf(),
        body,
    )
    .into_response())
}

pub(super) fn not_found() -> Response {
    page::message(
        StatusCode::NOT_FOUND,
        "No such order",
        "There is no order with this id.",
    )
}

fn customer_detail(customer: Option<&Customer>) -> String {
    let Some(c) = customer else {
        return "none given".into();
    };
    [&c.name, &c.email, &c.phone, &c.id, &c.gstin]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" · ")
}

fn address_line(a: &crate::orders::Address) -> String {
    [&a.line1, &a.line2, &a.city, &a.region, &a.postal_code]
        .into_iter()
        .flatten()
        .cloned()
        .chain([a.country.clone()])
        .collect::<Vec<_>>()
        .join(", ")
}

/// A timeline step's particulars, one line: `key=value` pairs of its JSON object.
fn detail_text(detail: &serde_json::Value) -> String {
    match detail {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn items(order: &OrderView) -> Markup {
    let r = &order.record;
    let cur = r.currency.as_str();
    html! {
        section aria-labelledby="items" {
            h2 #items { "Items" }
            table {
                thead { tr { th { "SKU" } th.num { "Qty" } th.num { "Unit" } th.num { "Amount" } th.num { "Discount" } th { "Tax" } } }
                tbody {
                    @for l in &r.items {
                        tr {
                            td { code { (l.sku.as_str()) } }
                            td.num { (l.qty) }
                            td.num { (money(l.unit_amount, cur)) }
                            td.num { (money(l.amount, cur)) }
                            td.num { (money(l.discount, cur)) }
                            td { @for t in &l.tax_lines { (t.name) " " (rate(t.rate_bps)) ": " (money(t.amount, cur)) br; } }
                        }
                    }
                }
                tfoot {
                    tr { th colspan="3" { "Subtotal" } td.num { (money(r.subtotal, cur)) } td {} td {} }
                    tr { th colspan="3" { "Discount" } td.num { (money(r.discount, cur)) } td {} td {} }
                    @for t in &r.tax_lines {
                        tr { th colspan="3" { (t.name) " " (rate(t.rate_bps)) } td.num { (money(t.amount, cur)) } td {} td {} }
                    }
                    tr { th colspan="3" { "Tax" } td.num { (money(r.tax, cur)) } td {} td {} }
                    tr.total { th colspan="3" { "Total" } td.num { (money(r.total, cur)) } td {} td {} }
                }
            }
        }
    }
}

/// A rate in basis points as a percentage: `9%`, `2.5%`.
fn rate(bps: i64) -> String {
    if bps % 100 == 0 {
        format!("{}%", bps / 100)
    } else {
        format!("{}.{:02}%", bps / 100, bps % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

fn payments(order: &OrderView, notes: &[Option<String>]) -> Markup {
    html! {
        section aria-labelledby="payments" {
            h2 #payments { "Payments" }
            @if order.payments.is_empty() { p { "No payment attempts." } }
            @else {
                table {
                    thead { tr { th { "Payment" } th { "Method" } th { "Gateway" } th { "Status" } th { "Failure" } th.num { "Amount" } th { "Created" } } }
                    tbody {
                        @for p in &order.payments {
                            tr {
                                td { code { (p.id) } }
                                td { (p.method) }
                                td { (p.gateway) }
                                td { (badge(&p.status)) }
                                td { (p.failure_code.as_deref().unwrap_or("")) }
                                td.num { (money(p.amount, &p.currency)) }
                                td { (p.created_at) }
                            }
                        }
                    }
                }
            }
            h2 #refunds { "Refunds" }
            @if order.refunds.is_empty() { p { "No refunds." } }
            @else {
                table.refunds {
                    thead { tr { th { "Refund" } th { "Status" } th.num { "Amount" } th { "Reason" } th { "Credit note" } th { "Created" } } }
                    tbody {
                        @for (f, note) in order.refunds.iter().zip(notes) {
                            tr {
                                td { code { (f.id) } }
                                td { (badge(&f.status)) }
                                td.num { (money(f.amount, &f.currency)) }
                                td { (f.reason) }
                                td {
                                    @if let Some(number) = note {
                                        a href={ "/admin/refunds/" (f.id) "/credit_note.pdf" } { (number) " (PDF)" }
                                    }
                                }
                                td { (f.created_at) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The refund and cancel forms, where the order's status allows them.
fn actions(order: &OrderView, console: &Console) -> Markup {
    let r = &order.record;
    let status = Status::parse(&r.status);
    let refundable = matches!(status, Some(Status::Confirmed | Status::PartiallyRefunded));
    let cancellable = status == Some(Status::Pending);
    let exponent = Currency::parse(&r.currency).map_or(2, Currency::exponent);
    let step = if exponent == 0 {
        "1".to_string()
    } else {
        format!("0.{}1", "0".repeat(exponent as usize - 1))
    };
    html! {
        @if refundable || cancellable {
            section.actions aria-labelledby="actions" {
                h2 #actions { "Actions" }
                @if refundable {
                    form.refund method="post" action={ "/admin/orders/" (r.id) "/refund" } {
                        input type="hidden" name="csrf" value=(console.csrf());
                        input type="hidden" name="key" value=(random_token(24));
                        label for="refund-amount" { "Refund amount (" (r.currency) "; empty refunds the rest)" }
                        input #refund-amount type="number" name="amount" min="0" step=(step) inputmode="decimal";
                        button type="submit" { "Issue refund" }
                    }
                }
                @if cancellable {
                    form.cancel method="post" action={ "/admin/orders/" (r.id) "/cancel" } {
                        input type="hidden" name="csrf" value=(console.csrf());
                        button type="submit" { "Cancel order" }
                    }
                }
            }
        }
    }
}

/// Back to the order's page, saying what was done or what went wrong.
pub(super) fn back(id: &OrderId, outcome: std::result::Result<String, String>) -> Response {
    Redirect::to(&format!("/admin/orders/{id}?{}", Notice::query(outcome))).into_response()
}

/// What a refused saga call says to the user; a failure of Till itself stays an error.
pub(super) fn refusal(err: Error) -> Result<String> {
    match err {
        Error::Internal(_) | Error::Unavailable(_) => Err(err),
        other => Ok(other.to_string()),
    }
}

/// `POST /admin/orders/{id}/cancel`: `checkout::cancel_order`, as the API's cancel route.
pub async fn cancel(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<OrderId>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response> {
    if let Err(refused) = console.check(&form.csrf) {
        return Ok(refused.into_response());
    }
    let mut conn = state.db.pool.acquire().await?;
    if crate::orders::store::head(&mut conn, &id).await?.is_none() {
        return Ok(not_found());
    }
    drop(conn);
    Ok(match checkout::cancel_order(&state, &id).await {
        Ok(_) => back(&id, Ok("order cancelled".into())),
        Err(err) => back(&id, Err(refusal(err)?)),
    })
}

/// `GET /admin/orders/{id}/invoice.pdf`
pub async fn invoice_pdf(
    State(state): State<AppState>,
    _console: Console,
    Path(id): Path<OrderId>,
) -> Result<Response> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(match checkout::invoice_pdf(&mut conn, &id).await? {
        Some(pdf) => pdf_answer(pdf),
        None => page::message(
            StatusCode::NOT_FOUND,
            "No invoice",
            "This order has no invoice yet.",
        ),
    })
}

/// `GET /admin/refunds/{id}/credit_note.pdf`
pub async fn credit_note_pdf(
    State(state): State<AppState>,
    _console: Console,
    Path(id): Path<RefundId>,
) -> Result<Response> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(match checkout::credit_note_pdf(&mut conn, &id).await? {
        Some(pdf) => pdf_answer(pdf),
        None => page::message(
            StatusCode::NOT_FOUND,
            "No credit note",
            "This refund has no credit note.",
        ),
    })
}

fn pdf_answer(pdf: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        pdf,
    )
        .into_response()
}
