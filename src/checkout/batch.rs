//! The flash-sale path: orders for the same SKU that arrive together are created in one
//! transaction, so however many buyers wait, one transaction at a time takes that SKU's
//! stock row, instead of a pool's worth queueing on its lock.
//!
//! Each buyer prices its own cart, then joins its SKU's queue. The first to find no batch
//! running starts one (a task of its own); a batch takes everyone waiting (up to
//! `BATCH_MAX`), in arrival order, each order inside a savepoint (a batch of one in the
//! transaction itself): its writes are kept, or —
//! when it is refused (out of stock, too many pending orders) — undone, and that buyer told
//! why. Once this batch has found the SKU short for some quantity, the later buyers asking
//! as much are told so without another statement. One commit answers them all. A batch
//! that fails before its commit is tried again as two halves, down to single orders; one
//! whose commit failed is answered with that failure (its outcome is unknown, as it would be
//! for an order of its own).
//!
//! A buyer who finds, before queueing, that the SKU has less than it asks for in stock is
//! answered `out_of_stock` at once: that read is a moment the stock was short.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::Connection;
use tokio::sync::oneshot;

use super::create::{fill, price_cart, Draft, OrderInput};
use super::OrderView;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::idempotency::KeyRef;
use crate::inventory;
use crate::metrics::Metrics;
use crate::orders;
use crate::pricing::Priced;
use crate::state::AppState;

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
    let priced = {
        let mut conn = state.db.reads.acquire().await?;
        let priced = price_cart(&mut conn, state, &input, state.now_ms()).await?;
        if inventory::store::available(&mut conn, sku.as_str()).await? < qty {
            Metrics::inc(&state.metrics.orders_out_of_stock);
            return Err(Error::OutOfStock(vec![sku.as_str().to_string()]));
        }
        priced
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
    let mut conn = match state.db.pool.acquire().await {
        Ok(conn) => conn,
        Err(err) => return Err(Failed::Retry(jobs, err.into())),
    };
    let mut answers: Vec<Result<OrderView>> = Vec::with_capacity(jobs.len());
    // A batch of one needs no savepoint: a refusal rolls the whole transaction back.
    let single = jobs.len() == 1;
    let mut refused_alone = false;
    let written = async {
        let mut tx = conn.begin().await?;
        // The smallest quantity this transaction found the SKU short of.
        let mut short_of: Option<i64> = None;
        for job in &jobs {
            let (sku, qty) = &job.input.lines[0];
            if short_of.is_some_and(|short| *qty >= short) {
                Metrics::inc(&state.metrics.orders_out_of_stock);
                answers.push(Err(Error::OutOfStock(vec![sku.as_str().to_string()])));
                continue;
            }
            let written = if single {
                write_one(state, &mut tx, job, now).await
            } else {
                let mut one = tx.begin().await?;
                let email = job
                    .input
                    .customer
                    .as_ref()
                    .and_then(|c| c["email"].as_str());
                if failpoint::armed(failpoint::BATCH_WRITE_FAILS, email.unwrap_or_default()) {
                    return Err(Error::Internal(anyhow::anyhow!(
                        "failpoint: an order of the batch could not be written"
                    )));
                }
                let written = write_one(state, &mut one, job, now).await;
                match &written {
                    Ok(_) => one.commit().await?,
                    Err(err) if !err.status().is_server_error() => one.rollback().await?,
                    Err(_) => {}
                }
                written
            };
            match written {
                Ok(view) => answers.push(Ok(view)),
                Err(err) if !err.status().is_server_error() => {
                    refused_alone = single;
                    if matches!(err, Error::OutOfStock(_)) {
                        short_of = Some(short_of.map_or(*qty, |s| s.min(*qty)));
                    }
                    answers.push(Err(err));
                }
                Err(err) => return Err(err),
            }
        }
        Ok::<_, Error>(tx)
    }
    .await;
    let tx = match written {
        Ok(tx) => tx,
        Err(err) => return Err(Failed::Retry(jobs, err)),
    };
    let ended = if refused_alone {
        tx.rollback().await
    } else {
        tx.commit().await
    };
    if let Err(err) = ended {
        if !refused_alone {
            return Err(Failed::Unknown(jobs, err.into()));
        }
    }
    for (job, answer) in jobs.into_iter().zip(answers) {
        if answer.is_ok() {
            Metrics::inc(&state.metrics.orders_created);
            // `fill` stored the answer under the key, and that has committed.
            if let Some(key) = &job.key {
                key.mark_answered();
            }
        }
        let _ = job.answer.send(answer);
    }
    Ok(())
}

/// One buyer's order, written in the batch's transaction (or its savepoint).
async fn write_one(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    job: &Job,
    now: i64,
) -> Result<OrderView> {
    let draft = Draft::new(&job.input, &job.priced);
    let order = draft.order(state, &job.input, &job.priced, now);
    orders::store::insert(conn, &order, now).await?;
    fill(
        conn,
        state,
        &job.input,
        &draft,
        &order,
        job.key.as_ref(),
        now,
    )
    .await
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
