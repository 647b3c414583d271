//! One payment on a gateway's books against Till's records, and the repair it calls for.

use super::super::pay::{apply_outcome, timed};
use super::super::process_refund;
use super::super::trail::{gateway_call, Op};
use super::{Findings, REASON};
use crate::error::Result;
use crate::ids::PaymentId;
use crate::orders;
use crate::payments::gateway::{Charge, Gateway, GatewayPayment, GatewayRecord, Outcome};
use crate::payments::{self, Method, Payment, Status};
use crate::state::AppState;

/// Whether `payment` is the one a paid order was confirmed with.
pub(super) async fn kept_by_order(state: &AppState, payment: &Payment) -> Result<bool> {
    let mut conn = state.db.pool.acquire().await?;
    let head = orders::store::head(&mut conn, &payment.order_id).await?;
    Ok(head.is_some_and(|o| o.status.is_paid() && o.paid_by.as_ref() == Some(&payment.id)))
}

/// One payment on a gateway's books against Till's: money captured that no order keeps is
/// refunded, an authorization held for an order that ended is voided, and a paid order's
/// money that the gateway says is gone is flagged.
pub(super) async fn check_record(
    state: &AppState,
    name: &str,
    gateway: &dyn Gateway,
    record: &GatewayRecord,
    findings: &mut Findings,
) -> Result<()> {
    match &record.outcome {
        Outcome::Succeeded if record.refunded_minor < record.amount_minor => {
            check_capture(state, name, gateway, record, findings).await
        }
        Outcome::Authorized => check_authorization(state, name, gateway, record, findings).await,
        Outcome::Succeeded => Ok(()),
        Outcome::Processing
        | Outcome::RequiresAction { .. }
        | Outcome::Failed { .. }
        | Outcome::Canceled
        | Outcome::Released => {
            if let Some(payment) = own_payment(state, name, record).await? {
                if kept_by_order(state, &payment).await? {
                    findings.flagged(format!(
                        "{name} {}: order {} is paid by {} but the gateway says {:?}",
                        record.gateway_ref, payment.order_id, payment.id, record.outcome
                    ));
                }
            }
            Ok(())
        }
    }
}

/// The Till payment a gateway record belongs to: by Till's id, and only if it is this
/// payment's own record (a second payment the gateway made under the same key is not).
async fn own_payment(
    state: &AppState,
    name: &str,
    record: &GatewayRecord,
) -> Result<Option<Payment>> {
    let Some(key) = &record.key else {
        return Ok(None);
    };
    let mut conn = state.db.pool.acquire().await?;
    Ok(
        payments::store::get(&mut conn, &PaymentId::from(key.as_str()))
            .await?
            .filter(|p| {
                p.gateway == name
                    && p.gateway_ref
                        .as_deref()
                        .is_none_or(|r| r == record.gateway_ref)
            }),
    )
}

/// Money the gateway holds but has not taken. Kept when a paid order was confirmed with it
/// (`capture_missing` takes it); left to recovery while Till's attempt is in flight;
/// otherwise voided — on Razorpay, which cannot void, it is released and lapses, and the
/// record only proves it was never captured.
async fn check_authorization(
    state: &AppState,
    name: &str,
    gateway: &dyn Gateway,
    record: &GatewayRecord,
    findings: &mut Findings,
) -> Result<()> {
    let payment = own_payment(state, name, record).await?;
    if let Some(payment) = &payment {
        if payment.status.in_flight() || kept_by_order(state, payment).await? {
            return Ok(());
        }
    }
    if !gateway.voids() {
        // Released: it lapses uncaptured, which this record (not captured) confirms.
        return Ok(());
    }
    let charge = match &payment {
        Some(p) => {
            let mut charge = p.charge();
            charge.gateway_ref = Some(record.gateway_ref.clone());
            charge
        }
        None => untracked_charge(record),
    };
    let whose = match &payment {
        Some(p) => format!("Till's {} is {}", p.id, p.status.as_str()),
        None => "no Till payment".to_string(),
    };
    let answer = match &payment {
        Some(p) => gateway_call(state, p, Op::Void, gateway.cancel(&charge)).await,
        None => timed(state, gateway.cancel(&charge)).await,
    };
    match answer {
        Ok(gp) if gp.outcome == Outcome::Released => {}
        Ok(gp) if gp.outcome == Outcome::Canceled => findings.repaired(format!(
            "{name} {}: authorization held but {whose}; voided",
            record.gateway_ref
        )),
        Ok(gp) => findings.flagged(format!(
            "{name} {}: authorization held but {whose}; the void answered {:?}",
            record.gateway_ref, gp.outcome
        )),
        Err(err) => findings.flagged(format!(
            "{name} {}: authorization held but {whose}; void failed: {err}",
            record.gateway_ref
        )),
    }
    Ok(())
}

/// A charge for money Till has no payment for, so it can be voided or refunded.
fn untracked_charge(record: &GatewayRecord) -> Charge {
    Charge {
        key: record
            .key
            .clone()
            .unwrap_or_else(|| record.gateway_ref.clone()),
        gateway_ref: Some(record.gateway_ref.clone()),
        amount_minor: record.amount_minor,
        currency: record.currency.clone(),
        method: Method::Card,
        source: String::new(),
    }
}

/// A capture at the gateway: kept by the order it paid for, or given back.
async fn check_capture(
    state: &AppState,
    name: &str,
    gateway: &dyn Gateway,
    record: &GatewayRecord,
    findings: &mut Findings,
) -> Result<()> {
    let payment = own_payment(state, name, record).await?;
    let Some(payment) = payment else {
        // Money Till never asked for, or cannot trace: give it back, once.
        let open = record.amount_minor - record.refunded_minor;
        let charge = untracked_charge(record);
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
    if kept_by_order(state, &payment).await? {
        return Ok(());
    }
    let open = {
        let mut conn = state.db.pool.acquire().await?;
        payment.amount.minor - payments::store::refunded_or_pending(&mut conn, &payment.id).await?
    };
    if open <= 0 {
        return Ok(());
    }
    let refund = payments::Refund::pending(&payment, open, REASON);
    {
        let mut conn = state.db.pool.acquire().await?;
        payments::store::insert_refund(&mut conn, &refund, state.now_ms()).await?;
    }
    process_refund(state, &refund.id).await?;
    let status = match payment.status {
        Status::Failed | Status::Canceled => "Till had given it up",
        _ => "no paid order keeps it",
    };
    findings.repaired(format!(
        "{name} {}: captured but {status}; refund {} of {open}",
        record.gateway_ref, refund.id
    ));
    Ok(())
}
