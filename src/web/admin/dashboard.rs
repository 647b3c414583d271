//! The dashboard: the figures people watch, from the database: checkouts per minute by
//! outcome, conversion (created → confirmed), payment success by method and gateway, stock
//! held by checkouts, and how far the event sinks and merchant webhooks lag.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::html;

use super::chart::{self, Bar, Column};
use super::page::{self, Page};
use super::session::Console;
use crate::clock::rfc3339;
use crate::error::Result;
use crate::orders::Status as OrderStatus;
use crate::payments::Status as PaymentStatus;
use crate::state::AppState;
use crate::{inventory, notify, orders, payments, relay};

/// The window the charts cover.
const WINDOW_MINUTES: i64 = 30;
const MINUTE_MS: i64 = 60_000;

/// The outcomes a checkout is counted under, with their chart colours.
const OUTCOMES: [(&str, &str); 4] = [
    ("confirmed", "ok"),
    ("pending", "wait"),
    ("cancelled", "bad"),
    ("expired", "late"),
];

fn outcome(status: OrderStatus) -> usize {
    match status {
        OrderStatus::Confirmed | OrderStatus::Refunded | OrderStatus::PartiallyRefunded => 0,
        OrderStatus::Pending => 1,
        OrderStatus::Cancelled => 2,
        OrderStatus::Expired => 3,
    }
}

/// `GET /admin`
pub async fn page(State(state): State<AppState>, console: Console) -> Result<Page> {
    let now = state.now_ms();
    let first_minute = now / MINUTE_MS - (WINDOW_MINUTES - 1);
    let since = first_minute * MINUTE_MS;
    let mut conn = state.db.pool.acquire().await?;
    let created = orders::store::created_per_minute(&mut conn, since).await?;
    let attempts = payments::store::attempts_since(&mut conn, since).await?;
    let held = inventory::store::held_units(&mut conn).await?;
    let (webhooks_pending, webhooks_failed) =
        notify::webhooks::store::delivery_counts(&mut conn).await?;
    drop(conn);
    let lags = relay::lags(&state).await?;

    let mut columns: Vec<Column> = (0..WINDOW_MINUTES)
        .map(|i| Column {
            label: rfc3339((first_minute + i) * MINUTE_MS)[11..16].to_string(),
            counts: vec![0; OUTCOMES.len()],
        })
        .collect();
    for (minute, status, count) in &created {
        if let Some(column) = usize::try_from(minute - first_minute)
            .ok()
            .and_then(|i| columns.get_mut(i))
        {
            column.counts[outcome(*status)] += count;
        }
    }
    let all: i64 = created.iter().map(|(_, _, c)| c).sum();
    let confirmed: i64 = created
        .iter()
        .filter(|(_, s, _)| outcome(*s) == 0)
        .map(|(_, _, c)| c)
        .sum();
    let (conversion_permille, conversion) = chart::rate(confirmed, all);

    // Success among attempts that ended: kept money (authorized, succeeded, refunded) or not.
    let mut by_route: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (method, gateway, status, count) in &attempts {
        let entry = by_route
            .entry((method.as_str().to_string(), gateway.clone()))
            .or_default();
        match status {
            PaymentStatus::Authorized | PaymentStatus::Succeeded | PaymentStatus::Refunded => {
                entry.0 += count;
                entry.1 += count;
            }
            PaymentStatus::Failed | PaymentStatus::Canceled => entry.1 += count,
            PaymentStatus::Processing | PaymentStatus::RequiresAction => {}
        }
    }
    let success: Vec<Bar> = by_route
        .iter()
        .map(|((method, gateway), (ok, ended))| {
            let (permille, text) = chart::rate(*ok, *ended);
            Bar {
                label: format!("{method} via {gateway}"),
                permille,
                text: format!("{text} of {ended}"),
            }
        })
        .collect();

    let body = html! {
        p.window { "The last " (WINDOW_MINUTES) " minutes, to " (rfc3339(now)) "." }
        section.figures aria-label="Figures" {
            div.figure #conversion { span.value { (conversion) } span.name { "conversion (created → confirmed)" } }
            div.figure #checkouts { span.value { (all) } span.name { "checkouts" } }
            div.figure #held { span.value { (held) } span.name { "units held by checkouts" } }
            div.figure #webhooks { span.value { (webhooks_pending) } span.name { "webhook deliveries waiting (" (webhooks_failed) " given up)" } }
        }
        section aria-labelledby="per-minute" {
            h2 #per-minute { "Checkouts per minute, by outcome" }
            (chart::stacked("Checkouts per minute", &OUTCOMES, &columns))
        }
        section aria-labelledby="conversion-bar" {
            h2 #conversion-bar { "Conversion" }
            (chart::bars("Created → confirmed", &[Bar {
                label: "orders".into(),
                permille: conversion_permille,
                text: format!("{conversion} of {all}"),
            }]))
        }
        section aria-labelledby="success" {
            h2 #success { "Payment success by method and gateway" }
            @if success.is_empty() { p { "No payment attempts ended in this window." } }
            @else { (chart::bars("Payment success rate", &success)) }
        }
        section aria-labelledby="lag" {
            h2 #lag { "Event sinks" }
            table.lag {
                thead { tr { th { "Sink" } th.num { "Events waiting" } th.num { "Oldest waiting (s)" } } }
                tbody {
                    @for (sink, waiting, age) in &lags {
                        tr { td { (sink) } td.num { (waiting) } td.num { (age) } }
                    }
                }
            }
        }
    };
    Ok(page::console("Dashboard", "/admin", &console.csrf(), body))
}
