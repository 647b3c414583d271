//! Reconciliation: every gateway's books against Till's, and the repairs. A capture that no
//! paid order keeps is refunded; a paid order whose capture is missing is captured, or
//! flagged when the gateway will not. Run by `till reconcile` and periodically by the workers.

use std::fmt::Write;

use sqlx::Row;

use super::pay::{apply_outcome, timed};
use super::process_refund;
use super::workers::recheck_payment;
use crate::error::Result;
use crate::ids::new_id;
use crate::orders;
use crate::payments::gateway::{Charge, Gateway, GatewayPayment, GatewayRecord, Outcome};
use crate::payments::{self, Method, Status};
use crate::state::AppState;

/// How many of a gateway's most recent payments `till reconcile` reads.
pub const LIST_LIMIT_FULL: usize = 20_000;

/// How many the periodic pass reads: it runs every few minutes, so the recent ones suffice.
pub const LIST_LIMIT_PERIODIC: usize = 1_000;

/// The reason recorded on refunds reconciliation makes.
pub const REASON: &str = "reconcile";

#[derive(Default, Debug)]
pub struct Findings {
    pub checked: usize,
    pub repaired: usize,
    pub flagged: usize,
    pub lines: Vec<String>,
}

impl Findings {
    fn repaired(&mut self, line: String) {
        self.repaired += 1;
        self.lines.push(format!("repaired: {line}"));
    }

    fn flagged(&mut self, line: String) {
        self.flagged += 1;
        self.lines.push(format!("FLAGGED: {line}"));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "checked {} gateway payments: {} repaired, {} flagged",
            self.checked, self.repaired, self.flagged
        );
        out
    }
}

/// Reconciles the `limit` most recent payments of every gateway.
pub async fn reconcile(state: &AppState, limit: usize) -> Result<Findings> {
    let mut findings = Findings::default();
    let mut names: Vec<&'static str> = state.gateways.keys().copied().collect();
    names.sort();
    for name in names {
        let gateway = state.gateway(name)?;
        let records = match timed(state, gateway.list(limit)).await {
            Ok(records) => records,
            Err(err) => {
                findings.flagged(format!("{name}: could not list payments: {err}"));
                continue;
            }
        };
        for record in records {
            findings.checked += 1;
            if record.outcome == Outcome::Succeeded && record.refunded_minor < record.amount_minor {
                check_capture(state, name, gateway.as_ref(), &record, &mut findings).await?;
            }
        }
    }
    capture_missing(state, &mut findings).await?;
    Ok(findings)
}

/// A capture at the gateway: kept by the order it paid for, or given back.
async fn check_capture(
    state: &AppState,
    name: &str,
    gateway: &dyn Gateway,
    record: &GatewayRecord,
    findings: &mut Findings,
) -> Result<()> {
    let payment = match &record.key {
        Some(key) => {
            let mut conn = state.db.pool.acquire().await?;
            // The record must be this payment's own: a second capture under the same key (a
            // duplicate the gateway made) is treated as untracked money.
            payments::get(&mut conn, key).await?.filter(|p| {
                p.gateway == name
                    && p.gateway_ref
                        .as_deref()
                        .is_none_or(|r| r == record.gateway_ref)
            })
        }
        None => None,
    };
    let Some(payment) = payment else {
        // Money Till never asked for, or cannot trace: give it back, once.
        let open = record.amount_minor - record.refunded_minor;
        let charge = Charge {
            key: record
                .key
                .clone()
                .unwrap_or_else(|| record.gateway_ref.clone()),
            gateway_ref: Some(record.gateway_ref.clone()),
            amount_minor: record.amount_minor,
            currency: record.currency.clone(),
            method: Method::Card,
            source: String::new(),
        };
        let refund_key = format!("{REASON}_{}", record.gateway_ref);
        match timed(state, gateway.refund(&charge, &refund_key, open)).await {
            Ok(()) => findings.repaired(format!(
                "{name} {}: captured with no Till payment; refunded {open}",
                record.gateway_ref
            )),
            Err(err) => findings.flagged(format!(
                "{name} {}: captured with no Till payment; refund failed: {err}",
                record.gateway_ref
            )),
        }
        return Ok(());
    };
    if payment.status.in_flight() {
        // The answer or webhook that would have told Till was lost: apply it now.
        let gp = GatewayPayment {
            gateway_ref: record.gateway_ref.clone(),
            outcome: Outcome::Succeeded,
        };
        apply_outcome(state, &payment.id, &gp).await?;
        findings.repaired(format!(
            "{name} {}: capture Till had not heard of; applied to {}",
            record.gateway_ref, payment.id
        ));
        return Ok(());
    }
    let (kept, open) = {
        let mut conn = state.db.pool.acquire().await?;
        let head = orders::head(&mut conn, &payment.order_id).await?;
        let kept = head.is_some_and(|o| {
            o.status.is_paid() && o.paid_by.as_deref() == Some(payment.id.as_str())
        });
        (
            kept,
            payment.amount_minor - payments::refunded_or_pending(&mut conn, &payment.id).await?,
        )
    };
    if kept || open <= 0 {
        return Ok(());
    }
    let refund_id = new_id("re");
    {
        let mut conn = state.db.pool.acquire().await?;
        payments::insert_refund(
            &mut conn,
            &refund_id,
            &payment.order_id,
            &payment.id,
            open,
            REASON,
            state.now_ms(),
        )
        .await?;
    }
    process_refund(state, &refund_id).await?;
    let status = match payment.status {
        Status::Failed | Status::Canceled => "Till had given it up",
        _ => "no paid order keeps it",
    };
    findings.repaired(format!(
        "{name} {}: captured but {status}; refund {refund_id} of {open}",
        record.gateway_ref
    ));
    Ok(())
}

/// Paid orders whose payment is still only authorized: capture now, or flag.
async fn capture_missing(state: &AppState, findings: &mut Findings) -> Result<()> {
    let rows = sqlx::query(
        "SELECT o.id, o.paid_by FROM orders o JOIN payments p ON p.id = o.paid_by
         WHERE o.status IN ('confirmed', 'refunded', 'partially_refunded') AND p.status = 'authorized'",
    )
    .fetch_all(&state.db.pool)
    .await?;
    for row in rows {
        let (order_id, payment_id): (String, String) = (row.get("id"), row.get("paid_by"));
        recheck_payment(state, &payment_id).await?;
        let mut conn = state.db.pool.acquire().await?;
        match payments::get(&mut conn, &payment_id).await?.map(|p| p.status) {
            Some(Status::Succeeded) => findings.repaired(format!("order {order_id}: capture was missing; captured {payment_id}")),
            other => findings.flagged(format!("order {order_id}: confirmed but payment {payment_id} is {other:?}; capture it by hand")),
        }
    }
    Ok(())
}
