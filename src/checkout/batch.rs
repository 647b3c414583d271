//! The flash-sale path: orders for the same SKU that arrive together are created in one
//! transaction, so however many buyers wait, one transaction at a time takes that SKU's
//! stock row, instead of a pool's worth queueing on its lock.
//!
//! Each buyer prices its own cart, then joins its SKU's queue. The first to find no batch
//! running starts one (a task of its own); a batch takes everyone waiting (up to
//! `BATCH_MAX`), in arrival order. It reads the SKU's stock rows once, under lock, and
//! decides from them who gets stock, in that order: a buyer asking more than is left is told
//! `out_of_stock` and has nothing written. The orders of those who got stock are written
//! together — one statement per kind of row (orders, lines, locks, timeline, events) for the
//! whole batch, one update per warehouse — and one commit answers them all. A batch that
//! fails before its commit is tried again as two halves, down to single orders; one whose
//! commit failed is answered with that failure (its outcome is unknown, as it would be for
//! an order of its own).
//!
//! A buyer who finds, before pricing and queueing, that the SKU has less than it asks for in
//! stock is answered `out_of_stock` at once: that read is a moment the stock was short.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use axum::http::StatusCode;

use super::create::{creation_steps, new_view, price_cart, Draft, OrderInput};
use super::OrderView;
use crate::db::Script;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::idempotency::{complete_into, KeyRef};
use crate::ids::OrderId;
use crate::inventory;
use crate::metrics::Metrics;
use crate::notify::{Outbox, Type};
use crate::orders::{self, NewOrder};
use crate::pricing::Priced;
use crate::state::AppState;
use crate::timeline::Steps;

/// The most orders one transaction creates: enough that a crowd drains in a few commits,
/// few enough that the SKU's row (which a confirmation also takes) is not held for long.
const BATCH_MAX: usize = 64;

/// Whether an order is created in its SKU's batch: one line, an id of Till's making (a
/// client-chosen one may already exist, which its own transaction sorts out), no coupon and
/// no customer whose pending orders are counted. Those two rows are locked before any stock
/// (ARCHITECTURE.md's lock order), which a batch, holding its SKU's row from its first
/// order on, could not keep.
pub fn joins(state: &AppState, input: &OrderInput) -> bool {
    input.lines.len() == 1
        && input.id.is_none()
        && input.coupon.is_none()
        && (input.customer_id().is_none() || state.max_pending_per_customer == 0)
}

/// Each SKU's waiting buyers, and whether a batch of it is running.
#[derive(Default)]
pub struct Batches {
    queues: Mutex<HashMap<String, Queue>>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Job>,
    running: bool,
}

/// One buyer's order, priced, and where its answer goes.
struct Job {
    input: OrderInput,
    priced: Priced,
    key: Option<KeyRef>,
    answer: oneshot::Sender<Result<OrderView>>,
}

/// Creates a one-line order in its SKU's batch (see the module's doc).
pub async fn create(state: &AppState, input: OrderInput, key: Option<KeyRef>) -> Result<OrderView> {
    let (sku, qty) = input.lines[0].clone();
    // Input checked before the stock, so a bad address is a 400 whatever is left.
    input.ship_to_place()?;
    let priced = {
        let mut conn = state.db.reads.acquire().await?;
        // The stock first, with the product: most of a flash sale's buyers are told
        // `out_of_stock` from this one read. A SKU the catalog lacks, or prices in another
        // currency, is priced all the same, for its 400.
        let sellable = inventory::store::available(&mut conn, sku.as_str()).await?;
        if let Some((currency, free)) = sellable {
            if currency == state.currency.code() && free < qty {
                Metrics::inc(&state.metrics.orders_out_of_stock);
                return Err(Error::OutOfStock(vec![sku.as_str().to_string()]));
            }
        }
        price_cart(&mut conn, state, &input, state.now_ms()).await?
    };
    let (answer, answered) = oneshot::channel();
    let job = Job {
        input,
        priced,
        key,
        answer,
    };
    let start = {
        let mut queues = lock(&state.batches.queues);
        let queue = queues.entry(sku.as_str().to_string()).or_default();
        queue.waiting.push(job);
        !std::mem::replace(&mut queue.running, true)
    };
    if start {
        tokio::spawn(drain(state.clone(), sku.as_str().to_string()));
    }
    answered.await.unwrap_or_else(|_| {
        Err(Error::Internal(anyhow::anyhow!(
            "the order's batch stopped"
        )))
    })
}

fn lock(
    queues: &Mutex<HashMap<String, Queue>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
    queues.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs batches of `sku` until nobody is waiting. Each batch runs as a task of its own, so a
/// panic in one drops its buyers' answers (each is told the batch stopped) and the queue
/// goes on.
async fn drain(state: AppState, sku: String) {
    loop {
        let batch: Vec<Job> = {
            let mut queues = lock(&state.batches.queues);
            let Some(queue) = queues.get_mut(&sku) else {
                return;
            };
            if queue.waiting.is_empty() {
                queues.remove(&sku);
                return;
            }
            let n = queue.waiting.len().min(BATCH_MAX);
            queue.waiting.drain(..n).collect()
        };
        let _ = tokio::spawn(run(state.clone(), batch)).await;
    }
}

/// Why a batch wrote nothing: it can be tried again smaller (it failed before its commit),
/// or its outcome is unknown (the commit itself failed).
enum Failed {
    Retry(Vec<Job>, Error),
    Unknown(Vec<Job>, Error),
}

/// One batch: tried whole, then in halves, down to single orders.
async fn run(state: AppState, batch: Vec<Job>) {
    let mut todo = vec![batch];
    while let Some(batch) = todo.pop() {
        match attempt(&state, batch).await {
            Ok(()) => {}
            Err(Failed::Retry(mut jobs, err)) if jobs.len() > 1 => {
                tracing::warn!(orders = jobs.len(), error = %err, "an order batch failed; trying it in halves");
                let second = jobs.split_off(jobs.len() / 2);
                todo.push(second);
                todo.push(jobs);
            }
            Err(Failed::Retry(jobs, err)) | Err(Failed::Unknown(jobs, err)) => {
                for job in jobs {
                    let _ = job.answer.send(Err(for_each_buyer(&err)));
                }
            }
        }
    }
}

/// Creates the batch's orders in one transaction and answers every buyer; on a failure,
/// hands the jobs back unanswered.
async fn attempt(state: &AppState, jobs: Vec<Job>) -> std::result::Result<(), Failed> {
    let now = state.now_ms();
    let written = async {
        let mut tx = state.db.write().await?;
        let answers = write_all(state, &mut tx, &jobs, now).await?;
        Ok::<_, Error>((tx, answers))
    }
    .await;
    let (tx, answers) = match written {
        Ok(written) => written,
        Err(err) => return Err(Failed::Retry(jobs, err)),
    };
    // A batch that sold nothing wrote nothing.
    let ended = if answers.iter().any(Result::is_ok) {
        tx.commit().await
    } else {
        tx.rollback().await
    };
    if let Err(err) = ended {
        return Err(Failed::Unknown(jobs, err.into()));
    }
    for (job, answer) in jobs.into_iter().zip(answers) {
        match &answer {
            Ok(_) => {
                Metrics::inc(&state.metrics.orders_created);
                // The answer was stored under the key, and that has committed.
                if let Some(key) = &job.key {
                    key.mark_answered();
                }
            }
            Err(Error::OutOfStock(_)) => Metrics::inc(&state.metrics.orders_out_of_stock),
            Err(_) => {}
        }
        let _ = job.answer.send(answer);
    }
    Ok(())
}

/// The batch's orders, written in its transaction: who gets stock is decided in arrival
/// order from the SKU's rows, read once under lock; then each kind of row — the orders,
/// their lines, the stock's locks, the timeline, the events — is written for every buyer
/// who got stock with one statement per run of them (`multirow::runs`). A buyer asking more
/// than is left is answered `out_of_stock` and has nothing written.
async fn write_all(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    jobs: &[Job],
    now: i64,
) -> Result<Vec<Result<OrderView>>> {
    let drafts: Vec<Draft> = jobs
        .iter()
        .map(|job| Draft::new(&job.input, &job.priced))
        .collect();
    let sku = &jobs[0].input.lines[0].0;
    let wants: Vec<(&OrderId, i64)> = jobs
        .iter()
        .zip(&drafts)
        .map(|(job, draft)| (&draft.id, job.input.lines[0].1))
        .collect();
    // Everything the batch writes after the stock reads nothing back: one script, the
    // locks first.
    let mut writes = Script::new();
    let grants =
        inventory::store::lock_for_orders(tx, &mut writes, state.db.kind, sku, &wants, now).await?;
    // The buyers who got stock, and their orders.
    let sold: Vec<usize> = (0..jobs.len()).filter(|&i| !grants[i].is_empty()).collect();
    let orders: Vec<NewOrder<'_>> = sold
        .iter()
        .map(|&i| drafts[i].order(state, &jobs[i].input, &jobs[i].priced, now))
        .collect();
    orders::store::insert_all_into(&mut writes, &orders, now);
    let mut steps = Steps::new(&drafts[0].id, now);
    let mut events = Outbox::new(now);
    // Each buyer's new order as `GET` would show it; none for a buyer who got no stock.
    let mut views: Vec<Option<OrderView>> = jobs.iter().map(|_| None).collect();
    for (&i, order) in sold.iter().zip(&orders) {
        creation_steps(&mut steps, order, &grants[i]);
        let view = new_view(order, now);
        events.add(Type::OrderCreated, &view)?;
        views[i] = Some(view);
    }
    steps.flush_into(&mut writes);
    events.flush_into(&mut writes);
    let mut answers = Vec::with_capacity(jobs.len());
    for ((job, draft), view) in jobs.iter().zip(&drafts).zip(views) {
        let Some(mut view) = view else {
            answers.push(Err(Error::OutOfStock(vec![sku.as_str().to_string()])));
            continue;
        };
        view.client_secret = Some(draft.secret.clone());
        if let Some(key) = &job.key {
            complete_into(&mut writes, key, StatusCode::CREATED, &view)?;
        }
        answers.push(Ok(view));
    }
    writes.run(tx).await?;
    // Only a test build has failpoints; a shipped one does not look for buyers' emails here.
    if cfg!(feature = "failpoints") && jobs.len() > 1 {
        for &i in &sold {
            let customer = jobs[i].input.customer.as_ref();
            let email = customer.and_then(|c| c["email"].as_str());
            if failpoint::armed(failpoint::BATCH_WRITE_FAILS, email.unwrap_or_default()) {
                return Err(Error::Internal(anyhow::anyhow!(
                    "failpoint: the batch failed after its writes, before its commit"
                )));
            }
        }
    }
    Ok(answers)
}

/// The failure of a batch for each of its buyers (errors are not `Clone`): the database
/// being away stays a 503, anything else is a 500, each with the failure's text.
fn for_each_buyer(err: &Error) -> Error {
    match err {
        Error::Unavailable(cause) => {
            Error::Unavailable(sqlx::Error::Io(std::io::Error::other(cause.to_string())))
        }
        other => Error::Internal(anyhow::anyhow!("{other:#}")),
    }
}
