//! Reconciliation: every gateway's books against Till's, and the repairs. A capture that no
//! paid order keeps is refunded; a paid order whose capture is missing is captured, or
//! flagged when the gateway will not. Run by `till reconcile` and periodically by the workers.

use std::collections::HashSet;
use std::fmt::Write;

mod records;

use records::{check_record, kept_by_order};

use super::pay::timed;
use super::recover::recheck_payment;
use super::trail::{gateway_call, Op};
use crate::error::Result;
use crate::payments::gateway::GatewayRecord;
use crate::payments::{self, Payment, Status};
use crate::state::AppState;

/// How much a pass reaches back: everything, or what changed since the last pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every payment on both sides (`till reconcile`).
    Everything,
    /// Payments created at the gateways, or changed in Till, since the last pass began (the
    /// periodic worker); everything on the first pass.
    SinceLastPass,
}

/// How far before the last pass's start a pass looks again: a payment being written while
/// the last pass ran, and a gateway whose clock runs behind Till's, are not missed.
const OVERLAP_MS: i64 = 10 * 60 * 1000;

/// How long an authorization Razorpay still holds could be captured (it lapses after about
/// five days): Till payments released in that window are looked at again every pass, so a
/// capture of one (by hand, in the dashboard) is found and refunded.
const RELEASE_WATCH_MS: i64 = 7 * 24 * 3600 * 1000;

/// Where the start of the last complete pass is kept (unix milliseconds).
const WATERMARK: &str = "reconcile_since_ms";

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

/// Which payments one pass has already compared, by Till's id and by the gateway's.
#[derive(Default)]
struct Seen {
    keys: HashSet<String>,
    refs: HashSet<(String, String)>,
}

impl Seen {
    fn add(&mut self, gateway: &str, record: &GatewayRecord) {
        if let Some(key) = &record.key {
            self.keys.insert(key.clone());
        }
        self.refs
            .insert((gateway.to_string(), record.gateway_ref.clone()));
    }

    fn has(&self, payment: &Payment) -> bool {
        self.keys.contains(payment.id.as_str())
            || payment
                .gateway_ref
                .as_ref()
                .is_some_and(|r| self.refs.contains(&(payment.gateway.clone(), r.clone())))
    }
}

/// Compares the gateways' books with Till's and repairs what it can: first each gateway's
/// payments (created since the last pass, or all), then Till's payments changed since then
/// that the listings did not show, then the paid orders whose money Till does not hold.
/// Those last reads look at whole tables (every payment changed since, every paid order), so
/// they go to `db.reads`: on SQLite they do not hold the one writer while they read.
pub async fn reconcile(state: &AppState, scope: Scope) -> Result<Findings> {
    let started_ms = state.now_ms();
    let since_ms = match scope {
        Scope::Everything => None,
        Scope::SinceLastPass => watermark(state).await?.map(|ms| ms - OVERLAP_MS),
    };
    let mut findings = Findings::default();
    let mut seen = Seen::default();
    let mut complete = true;
    let mut names: Vec<&'static str> = state.gateways.keys().copied().collect();
    names.sort();
    for name in names {
        let gateway = state.gateway(name)?;
        let records = match timed(state, gateway.list(since_ms.map(|ms| ms / 1000))).await {
            Ok(records) => records,
            Err(err) => {
                complete = false;
                findings.flagged(format!("{name}: could not list payments: {err}"));
                continue;
            }
        };
        for record in records {
            findings.checked += 1;
            seen.add(name, &record);
            check_record(state, name, gateway.as_ref(), &record, &mut findings).await?;
        }
    }
    complete &= check_changed(state, scope, since_ms, &mut seen, &mut findings).await?;
    flag_unheld_paid_orders(state, &mut findings).await?;
    capture_missing(state, &mut findings).await?;
    if complete {
        set_watermark(state, started_ms).await?;
    }
    Ok(findings)
}

/// Till's payments changed since the pass's start point (and Razorpay authorizations Till
/// released recently) that no listing showed: each is fetched from its gateway. With every
/// payment listed (`Scope::Everything`) one missing from the gateway's books has none
/// there. Returns false when a gateway could not be asked.
async fn check_changed(
    state: &AppState,
    scope: Scope,
    since_ms: Option<i64>,
    seen: &mut Seen,
    findings: &mut Findings,
) -> Result<bool> {
    let changed = {
        let mut conn = state.db.reads.acquire().await?;
        let released_since = state.now_ms() - RELEASE_WATCH_MS;
        payments::store::changed_since(&mut conn, since_ms.unwrap_or(0), released_since).await?
    };
    let mut complete = true;
    for payment in changed {
        if seen.has(&payment) {
            continue;
        }
        let record = match (scope, state.gateway(&payment.gateway)) {
            (Scope::Everything, _) => None,
            (Scope::SinceLastPass, Ok(gateway)) => {
                match gateway_call(
                    state,
                    &payment,
                    Op::Status,
                    gateway.fetch(&payment.charge()),
                )
                .await
                {
                    Ok(record) => record,
                    Err(err) => {
                        complete = false;
                        findings.flagged(format!(
                            "{} {}: could not fetch it: {err}",
                            payment.gateway, payment.id
                        ));
                        continue;
                    }
                }
            }
            (Scope::SinceLastPass, Err(_)) => {
                findings.flagged(format!(
                    "{}: payment of a gateway that is not configured: {}",
                    payment.id, payment.gateway
                ));
                continue;
            }
        };
        match record {
            Some(record) => {
                findings.checked += 1;
                seen.add(&payment.gateway, &record);
                let gateway = state.gateway(&payment.gateway)?;
                check_record(state, &payment.gateway, gateway.as_ref(), &record, findings).await?;
            }
            None if kept_by_order(state, &payment).await? => findings.flagged(format!(
                "{} {}: an order is paid by it but the gateway has no record of it",
                payment.gateway, payment.id
            )),
            None => {}
        }
    }
    Ok(complete)
}

async fn watermark(state: &AppState) -> Result<Option<i64>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(crate::db::setting(&mut conn, WATERMARK)
        .await?
        .and_then(|v| v.parse().ok()))
}

async fn set_watermark(state: &AppState, ms: i64) -> Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    crate::db::set_setting(&mut conn, WATERMARK, &ms.to_string()).await?;
    Ok(())
}

/// Paid orders whose money Till does not hold by its own records (the payment they were
/// confirmed with is not authorized or succeeded), or that a gateway contradicted: flagged
/// for a person, since only the customer can pay again.
async fn flag_unheld_paid_orders(state: &AppState, findings: &mut Findings) -> Result<()> {
    let mut conn = state.db.reads.acquire().await?;
    for o in super::store::unheld_paid_orders(&mut conn).await? {
        findings.flagged(format!(
            "order {}: paid by {} which is {} {}",
            o.order_id, o.paid_by, o.payment_status, o.contradiction
        ));
    }
    Ok(())
}

/// Paid orders whose payment is still only authorized: capture now, or flag.
async fn capture_missing(state: &AppState, findings: &mut Findings) -> Result<()> {
    let due = {
        let mut conn = state.db.reads.acquire().await?;
        super::store::paid_awaiting_capture(&mut conn).await?
    };
    for (order_id, payment_id) in due {
        recheck_payment(state, &payment_id).await?;
        let mut conn = state.db.pool.acquire().await?;
        match payments::store::get(&mut conn, &payment_id).await?.map(|p| p.status) {
            Some(Status::Succeeded) => findings.repaired(format!("order {order_id}: capture was missing; captured {payment_id}")),
            other => findings.flagged(format!("order {order_id}: confirmed but payment {payment_id} is {other:?}; capture it by hand")),
        }
    }
    Ok(())
}
