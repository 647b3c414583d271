//! Races that decide where money ends up, run many at once in real time against `till
//! gateway-sim` as a separate process (Stripe cards and 3-D Secure, Razorpay UPI collect and
//! wallets, with latency) and against the embedded simulator's own protocol: 3-D Secure
//! completed around hold expiry, a customer's cancel racing 3-D Secure, UPI and wallets,
//! payments at expiry, a cancel (and its void) racing a slow create, duplicated and
//! reordered webhooks. After each batch the gateways' own books are compared with Till's
//! orders, then the invariants and reconciliation must find nothing (see `audit`).
//!
//! `TILL_RACES` is the number of races per backend (default 330; 2,000 by hand). Run with
//! `-- --nocapture` for the figures.
//!
//! Over 400 lines: one scenario per behaviour, kept together so the file reads as the
//! list of what is covered.

mod audit;
mod forged;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde_json::Value;
use till::{Config, Workers};

use crate::both;
use crate::gateway_sim::{spawn_with_gateway_sim, use_gateways_at, GatewaySim, Ledger, SimSpec};
use crate::helpers::{Backend, TestApp};
use audit::{Figures, Race, Report};

const SKU: &str = "RACE-1";
const PRICE: i64 = 49_900;
/// Enough that a re-lock never runs out: a race is about money, not stock.
const STOCK: i64 = 1_000_000;
/// Batches per backend over which `TILL_RACES` is shared.
const BATCHES_PER_BACKEND: usize = 11;
const RACES_PER_BACKEND_DEFAULT: usize = 330;
/// Races in flight at once in one batch (each mostly waits on timers and the network).
const CONCURRENCY_MAX: usize = 64;
/// Races start spread over this much time per race (3 s for a batch of 30): all at once,
/// the simulator's webhooks queue behind each other and the customer nearly always wins;
/// spread, both orders happen.
const START_SPREAD_MS_PER_RACE: i64 = 100;
/// A race's own steps (a few requests and timers) end well within this, even at 2,000.
const RACE_MAX: Duration = Duration::from_secs(60);
/// Settling, comparing, verifying and reconciling one batch.
const AUDIT_MAX: Duration = Duration::from_secs(180);
/// How long the books must stand still before they are compared: longer than any webhook
/// the simulator holds back.
const QUIET: Duration = Duration::from_millis(1_500);

fn races_per_batch() -> usize {
    let total = std::env::var("TILL_RACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RACES_PER_BACKEND_DEFAULT);
    (total / BATCHES_PER_BACKEND).max(4)
}

/// Real time, a short hold, fast workers; periodic reconciliation off, so the final
/// reconciliation sees whatever the races left.
fn race_config(hold_ttl_secs: i64) -> impl FnOnce(&mut Config) {
    move |cfg| {
        cfg.hold_ttl_secs = hold_ttl_secs;
        cfg.worker_tick_ms = 20;
        cfg.recovery_after_secs = 5;
        cfg.reconcile_every_secs = 0;
        cfg.db_max_connections = 20;
    }
}

/// Where a batch's gateways keep their books.
enum Gateways {
    /// `till gateway-sim`, a process of its own.
    Process(GatewaySim),
    /// The simulator inside Till: its own protocol, and its Stripe and Razorpay endpoints.
    InProcess,
}

/// Till with the simulator inside it; cards on its Stripe endpoints, UPI and wallets on its
/// Razorpay endpoints unless `configure` says otherwise (`"sim"`: its own protocol).
async fn spawn_in_process(b: Backend, configure: impl FnOnce(&mut Config)) -> (TestApp, Gateways) {
    let app = TestApp::spawn_with(b, Workers::Run, |cfg| {
        use_gateways_at(cfg, None);
        configure(cfg);
    })
    .await;
    (app, Gateways::InProcess)
}

/// The simulator's own protocol for every method.
fn own_protocol(cfg: &mut Config) {
    cfg.card_gateway = Some("sim".into());
    cfg.upi_gateway = Some("sim".into());
    cfg.wallet_gateway = Some("sim".into());
}

async fn with_gateway_sim(
    b: Backend,
    spec: &SimSpec,
    configure: impl FnOnce(&mut Config),
) -> (TestApp, Gateways) {
    let (app, sim) = spawn_with_gateway_sim(b, spec, configure).await;
    (app, Gateways::Process(sim))
}

/// Runs `race` `races_per_batch()` times at once on `app`, then settles and audits.
async fn batch<F, Fut>((app, gateways): (TestApp, Gateways), title: String, race: F) -> Figures
where
    F: Fn(Arc<TestApp>, usize) -> Fut,
    Fut: Future<Output = Race> + Send + 'static,
{
    let started = Instant::now();
    app.stocked(SKU, PRICE, STOCK).await;
    let app = Arc::new(app);
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY_MAX));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..races_per_batch() {
        let slot = slots.clone().acquire_owned().await.expect("semaphore open");
        let one = race(app.clone(), i);
        let spread_ms = START_SPREAD_MS_PER_RACE * races_per_batch() as i64;
        let start_in = Duration::from_millis(between(0, spread_ms) as u64);
        set.spawn(async move {
            tokio::time::sleep(start_in).await;
            let race = tokio::time::timeout(RACE_MAX, one)
                .await
                .unwrap_or_else(|_| panic!("race {i} still running after {RACE_MAX:?}"));
            drop(slot);
            race
        });
    }
    let mut races = Vec::new();
    while let Some(race) = set.join_next().await {
        races.push(race.expect("a race panicked"));
    }
    let title = format!("{title} on {:?}", backend_of(&app));
    let ledger = match &gateways {
        Gateways::Process(sim) => Ledger::of_process(&sim.url),
        Gateways::InProcess => Ledger::at(&app.url),
    };
    let audit = audit::settle_and_audit(&app, Some(&ledger), &races, QUIET, title, started);
    let figures = tokio::time::timeout(AUDIT_MAX, audit)
        .await
        .expect("the audit finishes in time");
    let app = Arc::try_unwrap(app).ok().expect("every race has ended");
    app.close().await;
    drop(gateways);
    figures
}

fn backend_of(app: &TestApp) -> Backend {
    if app.db.url.starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Sleeps until `offset_ms` after `start` (at once when that has passed).
async fn at(start: Instant, offset_ms: i64) {
    let due = start + Duration::from_millis(offset_ms.max(0) as u64);
    tokio::time::sleep_until(due.into()).await;
}

fn between(lo_ms: i64, hi_ms: i64) -> i64 {
    rand::thread_rng().gen_range(lo_ms..=hi_ms)
}

/// A new order for one unit; returns its id and when it was created (its hold runs from then).
async fn new_order(app: &TestApp) -> (String, Instant) {
    let created = Instant::now();
    (app.new_order(SKU, 1).await, created)
}

/// The customer cancels; true when Till answered that the order is cancelled.
async fn cancel(app: &TestApp, id: &str) -> bool {
    let (status, body) = app
        .call(Method::POST, &format!("/v1/orders/{id}/cancel"), None)
        .await;
    status == 200 && body["status"] == "cancelled"
}

/// The customer finishes 3-D Secure on the page the payment's `next_action` names (nothing
/// to do when the payment was refused, say because the order had already ended).
async fn complete_3ds(app: &TestApp, payment: &Value) {
    if payment["status"] != "requires_action" {
        return;
    }
    let url = payment["next_action"]["redirect_url"]
        .as_str()
        .unwrap_or_else(|| panic!("3-D Secure without a page to finish it on: {payment}"));
    let resp = app.http.get(url).send().await.expect("3-D Secure page");
    assert!(
        resp.status().is_success(),
        "3-D Secure page: {}",
        resp.status()
    );
}

/// A customer pays with `source` and then cancels `after_ms` (a range) after the payment
/// was answered — or, with `during`, after the payment request was sent.
#[derive(Clone, Copy)]
struct CancelRace {
    method: &'static str,
    source: &'static str,
    after_ms: (i64, i64),
    during: bool,
    three_d_secure: bool,
}

async fn cancel_race(app: Arc<TestApp>, r: CancelRace) -> Race {
    let (id, _) = new_order(&app).await;
    let cancelled = if r.during {
        let pay = app.pay(&id, r.method, r.source);
        let cancel_later = async {
            tokio::time::sleep(Duration::from_millis(
                between(r.after_ms.0, r.after_ms.1) as u64
            ))
            .await;
            cancel(&app, &id).await
        };
        tokio::join!(pay, cancel_later).1
    } else {
        let (_, payment) = app.pay(&id, r.method, r.source).await;
        if r.three_d_secure {
            complete_3ds(&app, &payment).await;
        }
        let answered = Instant::now();
        at(answered, between(r.after_ms.0, r.after_ms.1)).await;
        cancel(&app, &id).await
    };
    Race {
        order_id: id,
        cancelled_by_customer: cancelled,
    }
}

/// A customer pays with `source` `pay_at_ms` (a range) after the order was created, with a
/// hold of `hold_ttl_secs`: the payment meets the expiry.
async fn pay_at(app: Arc<TestApp>, method: &str, source: &str, pay_at_ms: (i64, i64)) -> Race {
    let (id, created) = new_order(&app).await;
    at(created, between(pay_at_ms.0, pay_at_ms.1)).await;
    app.pay(&id, method, source).await;
    Race::new(id)
}

/// A customer pays by card with 3-D Secure at once and completes it `done_at_ms` (a range)
/// after the order was created.
async fn three_d_secure_at(app: Arc<TestApp>, done_at_ms: (i64, i64)) -> Race {
    let (id, created) = new_order(&app).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    at(created, between(done_at_ms.0, done_at_ms.1)).await;
    complete_3ds(&app, &payment).await;
    Race::new(id)
}

both!(
    three_d_secure_completed_around_hold_expiry_never_confirms_without_money,
    cancel_racing_three_d_secure_never_keeps_money,
    cancel_racing_upi_and_wallets_never_keeps_money,
    payment_at_hold_expiry_confirms_only_with_money,
    cancel_racing_a_slow_create_never_keeps_money,
    duplicated_and_reordered_webhooks_keep_the_books_straight,
);

async fn three_d_secure_completed_around_hold_expiry_never_confirms_without_money(b: Backend) {
    let mut report = Report::default();
    for latency_ms in [50, 200] {
        let gateways = with_gateway_sim(b, &SimSpec::latency(latency_ms), race_config(3)).await;
        let title = format!(
            "3-D Secure done 2.5-3.5 s into a 3 s hold, Stripe, gateway-sim {latency_ms} ms"
        );
        report.add(
            batch(gateways, title, |app, _| {
                three_d_secure_at(app, (2_500, 3_500))
            })
            .await,
        );
    }
    report.assert_clean();
}

async fn cancel_racing_three_d_secure_never_keeps_money(b: Backend) {
    let mut report = Report::default();
    let race = CancelRace {
        method: "card",
        source: "pm_card_authenticationRequired",
        after_ms: (0, 150),
        during: false,
        three_d_secure: true,
    };
    let in_process = spawn_in_process(b, race_config(30)).await;
    let title = "cancel 0-150 ms after 3-D Secure, Stripe, embedded simulator".to_string();
    report.add(batch(in_process, title, move |app, _| cancel_race(app, race)).await);
    let own = spawn_in_process(b, |cfg| {
        race_config(30)(cfg);
        own_protocol(cfg);
    })
    .await;
    let title = "cancel 0-150 ms after 3-D Secure, the simulator's own protocol".to_string();
    report.add(batch(own, title, move |app, _| cancel_race(app, race)).await);
    let gateways = with_gateway_sim(b, &SimSpec::latency(50), race_config(30)).await;
    let title = "cancel 0-250 ms after 3-D Secure, Stripe, gateway-sim 50 ms".to_string();
    let race = CancelRace {
        after_ms: (0, 250),
        ..race
    };
    report.add(batch(gateways, title, move |app, _| cancel_race(app, race)).await);
    let gateways = with_gateway_sim(b, &SimSpec::latency(50), |cfg| {
        race_config(30)(cfg);
        own_protocol(cfg);
    })
    .await;
    let title = "cancel 0-250 ms after 3-D Secure, the simulator's own protocol, gateway-sim 50 ms"
        .to_string();
    report.add(batch(gateways, title, move |app, _| cancel_race(app, race)).await);
    report.assert_clean();
}

/// UPI collect and wallets complete this long after the payment; the cancel lands around then.
const ASYNC_DELAY_MS: i64 = 1_000;

fn upi_or_wallet_then_cancel(i: usize) -> CancelRace {
    CancelRace {
        method: if i.is_multiple_of(2) { "upi" } else { "wallet" },
        source: if i.is_multiple_of(2) {
            "success@razorpay"
        } else {
            "paytm"
        },
        after_ms: (ASYNC_DELAY_MS - 100, ASYNC_DELAY_MS + 200),
        during: false,
        three_d_secure: false,
    }
}

async fn cancel_racing_upi_and_wallets_never_keeps_money(b: Backend) {
    let mut report = Report::default();
    let spec = SimSpec {
        faults: "latency_ms=50".into(),
        delay_ms: ASYNC_DELAY_MS,
    };
    let gateways = with_gateway_sim(b, &spec, race_config(30)).await;
    let title = "cancel 0.9-1.2 s after UPI or wallet, Razorpay, gateway-sim 50 ms".to_string();
    report.add(
        batch(gateways, title, |app, i| {
            cancel_race(app, upi_or_wallet_then_cancel(i))
        })
        .await,
    );
    let own = spawn_in_process(b, |cfg| {
        race_config(30)(cfg);
        own_protocol(cfg);
        cfg.sim_delay_ms = ASYNC_DELAY_MS;
    })
    .await;
    let title = "cancel 0.9-1.2 s after UPI or wallet, the simulator's own protocol".to_string();
    report.add(
        batch(own, title, |app, i| {
            cancel_race(app, upi_or_wallet_then_cancel(i))
        })
        .await,
    );
    let gateways = with_gateway_sim(b, &spec, |cfg| {
        race_config(30)(cfg);
        own_protocol(cfg);
    })
    .await;
    let title =
        "cancel 0.9-1.2 s after UPI or wallet, the simulator's own protocol, gateway-sim 50 ms"
            .to_string();
    report.add(
        batch(gateways, title, |app, i| {
            cancel_race(app, upi_or_wallet_then_cancel(i))
        })
        .await,
    );
    report.assert_clean();
}

async fn payment_at_hold_expiry_confirms_only_with_money(b: Backend) {
    const TTL_MS: i64 = 2_000;
    const DELAY_MS: i64 = 500;
    let spec = SimSpec {
        faults: "latency_ms=200".into(),
        delay_ms: DELAY_MS,
    };
    let gateways = with_gateway_sim(b, &spec, |cfg| {
        race_config(TTL_MS / 1000)(cfg);
        cfg.wallet_gateway = Some("sim".into());
        cfg.sim_delay_ms = DELAY_MS;
    })
    .await;
    let title = "payment at the end of a 2 s hold: Stripe card, Razorpay UPI (gateway-sim 200 ms), wallet on the simulator's own protocol".to_string();
    let mut report = Report::default();
    report.add(
        batch(gateways, title, |app, i| async move {
            // Asynchronous methods pay so that their outcome lands around the expiry.
            let lands = (TTL_MS - DELAY_MS - 400, TTL_MS - DELAY_MS + 300);
            match i % 3 {
                0 => pay_at(app, "card", "pm_card_visa", (TTL_MS - 500, TTL_MS + 100)).await,
                1 => pay_at(app, "upi", "success@razorpay", lands).await,
                _ => pay_at(app, "wallet", "paytm", lands).await,
            }
        })
        .await,
    );
    report.assert_clean();
}

fn cancel_during(method: &'static str, source: &'static str, after_ms: (i64, i64)) -> CancelRace {
    CancelRace {
        method,
        source,
        after_ms,
        during: true,
        three_d_secure: false,
    }
}

/// Every other race a card, the rest UPI; the cancel lands 0–300 ms into the payment.
fn card_or_upi_cancelled_during_create(i: usize) -> CancelRace {
    if i.is_multiple_of(2) {
        cancel_during("card", "pm_card_visa", (0, 300))
    } else {
        cancel_during("upi", "success@razorpay", (0, 300))
    }
}

async fn cancel_racing_a_slow_create_never_keeps_money(b: Backend) {
    let mut report = Report::default();
    let gateways = with_gateway_sim(b, &SimSpec::latency(200), race_config(30)).await;
    let title = "cancel 0-300 ms into a slow create: Stripe card, Razorpay UPI, gateway-sim 200 ms"
        .to_string();
    report.add(
        batch(gateways, title, |app, i| {
            cancel_race(app, card_or_upi_cancelled_during_create(i))
        })
        .await,
    );
    let own = spawn_in_process(b, |cfg| {
        race_config(30)(cfg);
        own_protocol(cfg);
    })
    .await;
    let title = "cancel 0-5 ms into a card payment, the simulator's own protocol".to_string();
    let race = cancel_during("card", "pm_card_visa", (0, 5));
    report.add(batch(own, title, move |app, _| cancel_race(app, race)).await);
    let gateways = with_gateway_sim(b, &SimSpec::latency(200), |cfg| {
        race_config(30)(cfg);
        own_protocol(cfg);
    })
    .await;
    let title = "cancel 0-300 ms into a slow create: card and UPI on the simulator's own protocol, gateway-sim 200 ms".to_string();
    report.add(
        batch(gateways, title, |app, i| {
            cancel_race(app, card_or_upi_cancelled_during_create(i))
        })
        .await,
    );
    report.assert_clean();
}

async fn duplicated_and_reordered_webhooks_keep_the_books_straight(b: Backend) {
    const TTL_MS: i64 = 2_000;
    const DELAY_MS: i64 = 300;
    const WEBHOOK_FAULTS: &str = "webhook_dup=0.5,webhook_reorder=0.5,seed=11";
    let spec = SimSpec {
        faults: format!("latency_ms=50,{WEBHOOK_FAULTS}"),
        delay_ms: DELAY_MS,
    };
    let gateways = with_gateway_sim(b, &spec, |cfg| {
        race_config(TTL_MS / 1000)(cfg);
        cfg.wallet_gateway = Some("sim".into());
        cfg.sim_delay_ms = DELAY_MS;
        cfg.sim_faults = Some(WEBHOOK_FAULTS.into());
    })
    .await;
    let title = "half the webhooks duplicated, half reordered: 3-D Secure at expiry, cancels around UPI and wallets, plain cards".to_string();
    let mut report = Report::default();
    report.add(
        batch(gateways, title, |app, i| async move {
            let around = (DELAY_MS - 100, DELAY_MS + 150);
            let cancel_after = |method, source| CancelRace {
                method,
                source,
                after_ms: around,
                during: false,
                three_d_secure: false,
            };
            match i % 4 {
                0 => three_d_secure_at(app, (TTL_MS - 400, TTL_MS + 400)).await,
                1 => cancel_race(app, cancel_after("upi", "success@razorpay")).await,
                2 => cancel_race(app, cancel_after("wallet", "paytm")).await,
                _ => pay_at(app, "card", "pm_card_visa", (0, 0)).await,
            }
        })
        .await,
    );
    report.assert_clean();
}
