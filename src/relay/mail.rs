//! The mail sink: customer email for `order.confirmed` (invoice attached), `payment.failed`,
//! `order.expired` and `refund.succeeded` (credit note attached).
//!
//! Two steps, so a slow mail server never holds up the event stream. `queue_in` composes one
//! message per such event whose order has a customer email and queues it (`mail_outbox`,
//! keyed by the event id) in the transaction that moves the sink's cursor (`relay::pass`):
//! each event is queued exactly once. `send_due` then leases due messages and sends them: sent is marked
//! sent; a temporary failure (4xx, no connection) is tried again after a capped, jittered,
//! exponential wait; a permanent one (5xx), or `ATTEMPTS_MAX` temporary ones, marks it
//! failed. A crash between the server's answer and the mark sends the message again, with
//! the same `Message-ID`, which receivers dedupe.

use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio::task::JoinHandle;

use super::letters;
use crate::error::{corrupt, Result};
use crate::ids::{OrderId, RefundId};
use crate::mail::store::{self, Tried};
use crate::mail::{self, Attachment, Failure, Letter, State, ATTEMPTS_MAX};
use crate::notify::{Event, Type};
use crate::state::AppState;
use crate::timeline;
use crate::{checkout, documents};

/// Messages one send pass leases.
const SEND_BATCH: i64 = 20;

/// How long a leased message stays one sender's: well above one SMTP conversation's timeout
/// (30 s), so a message is never sent by two senders at once; a sender that crashed lets
/// its messages go after this.
const LEASE_MS: i64 = 120_000;

/// Queues the message of each of `events` that mails a customer, in the caller's
/// transaction (the one that moves the mail sink's cursor past them).
pub async fn queue_in(tx: &mut AnyConnection, events: &[Event], now: i64) -> Result<()> {
    for event in events {
        let Some(letter) = letters::compose(tx, event).await? else {
            continue;
        };
        let queued = store::NewMail {
            id: &event.id,
            kind: event.kind.as_str(),
            order_id: &letter.order_id,
            refund_id: letter.refund_id.as_deref(),
            recipient: &letter.recipient,
            subject: &letter.subject,
            body_text: &letter.text,
            body_html: &letter.html,
        };
        store::queue(tx, &queued, now).await?;
    }
    Ok(())
}

/// The sender's loop: sends what is due, then waits a tick; a failing pass backs off
/// (doubling, up to the relay's `BACKOFF_MAX`).
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tick = Duration::from_millis(state.worker_tick_ms);
        let mut backoff = tick;
        loop {
            let wait = match send_due(&state).await {
                Ok(_) => {
                    backoff = tick;
                    tick
                }
                Err(err) => {
                    tracing::warn!(error = %err, "mail send pass failed");
                    let wait = backoff;
                    backoff = (backoff * 2).min(super::BACKOFF_MAX);
                    wait
                }
            };
            if !state.stopping.pause(wait).await {
                return;
            }
        }
    })
}

/// Sends the messages that are due; returns how many the server took.
pub async fn send_due(state: &AppState) -> Result<usize> {
    let now = state.now_ms();
    let ids = store::lease(&state.db, now, now + LEASE_MS, SEND_BATCH).await?;
    let mut sent = 0;
    for id in ids {
        if send_one(state, &id).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Sends one leased message and records what came of it; true if it was sent.
async fn send_one(state: &AppState, id: &str) -> Result<bool> {
    let (row, attachments) = {
        let mut conn = state.db.pool.acquire().await?;
        let Some(row) = store::get(&mut conn, id).await? else {
            return Ok(false);
        };
        let kind = Type::parse(&row.kind).ok_or_else(|| corrupt("mail_outbox.kind", &row.kind))?;
        let attachments = attachments(&mut conn, kind, &row).await?;
        (row, attachments)
    };
    // No connection is held while the server is talked to (SQLite has one).
    let letter = Letter {
        event_id: &row.id,
        to: &row.recipient,
        subject: &row.subject,
        text: &row.body_text,
        html: &row.body_html,
        date_ms: row.created_at,
        attachments,
    };
    let outcome = match state.mail.message(letter) {
        Ok(message) => state.mail.send(&row.id, message).await,
        Err(failure) => Err(failure),
    };
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    match outcome {
        Ok(()) => {
            // Marked sent and on the order's timeline together, once.
            let mut tx = conn.begin().await?;
            if store::record_try(&mut tx, &row.id, &Tried::Sent, now).await? {
                let order_id = OrderId::from(row.order_id.as_str());
                timeline::email_sent(&mut tx, &order_id, &row.kind, &row.recipient, now).await?;
            }
            tx.commit().await?;
            Ok(true)
        }
        Err(Failure::Temporary(error)) if row.attempts + 1 < ATTEMPTS_MAX => {
            let wait = mail::retry_delay_ms(state.mail.retry_base_ms, row.attempts, rand::random());
            tracing::warn!(event_id = %row.id, attempt = row.attempts + 1, wait_ms = wait, %error, "email not sent; trying again later");
            let tried = Tried::RetryAt(&error, now + wait);
            store::record_try(&mut conn, &row.id, &tried, now).await?;
            Ok(false)
        }
        Err(Failure::Temporary(error)) => {
            let error = format!("gave up after {ATTEMPTS_MAX} tries: {error}");
            tracing::error!(event_id = %row.id, %error, "email not sent");
            store::record_try(&mut conn, &row.id, &Tried::Failed(&error), now).await?;
            Ok(false)
        }
        Err(Failure::Permanent(error)) => {
            tracing::error!(event_id = %row.id, %error, "email refused for good");
            store::record_try(&mut conn, &row.id, &Tried::Failed(&error), now).await?;
            Ok(false)
        }
    }
}

/// The PDFs a message carries, as the saga keeps them (`checkout::documents`): the invoice
/// of a confirmed order, the credit note of a refund; none for a refund Till made on its own
/// (it issues no credit note).
async fn attachments(
    conn: &mut AnyConnection,
    kind: Type,
    row: &store::Row,
) -> Result<Vec<Attachment>> {
    let document = match (kind, &row.refund_id) {
        (Type::OrderConfirmed, _) => {
            let order_id = OrderId::from(row.order_id.as_str());
            match checkout::documents::invoice_document(conn, &order_id).await? {
                Some(doc) => Some((
                    format!("invoice-{}", doc.number),
                    documents::invoice_pdf(&doc)?,
                )),
                None => None,
            }
        }
        (Type::RefundSucceeded, Some(refund_id)) => {
            let refund_id = RefundId::from(refund_id.as_str());
            match checkout::documents::credit_note_document(conn, &refund_id).await? {
                Some(doc) => Some((
                    format!("credit-note-{}", doc.number),
                    documents::credit_note_pdf(&doc)?,
                )),
                None => None,
            }
        }
        _ => None,
    };
    Ok(document
        .map(|(name, bytes)| Attachment {
            filename: format!("{}.pdf", name.replace('/', "-")),
            content_type: "application/pdf",
            bytes,
        })
        .into_iter()
        .collect())
}

/// How many messages are in each state, every state named (for `/metrics`).
pub async fn counts(state: &AppState) -> Result<Vec<(&'static str, i64)>> {
    let mut conn = state.db.pool.acquire().await?;
    let stored = store::counts(&mut conn).await?;
    let mut counts: Vec<(&'static str, i64)> = State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for (state, n) in stored {
        let state = State::try_from(state.as_str())?;
        if let Some(slot) = counts.iter_mut().find(|(name, _)| *name == state.as_str()) {
            slot.1 = n;
        }
    }
    Ok(counts)
}
