//! Crash loop: checkouts against a real `till serve` process that is killed again and again —
//! with SIGKILL at random moments, and by itself at failpoints inside the saga (after the
//! payment attempt commits, after the gateway answers, mid-finalize). At the end a clean
//! process must bring every order to a terminal state, and the invariants must hold: no
//! oversold unit, no double or orphan capture, no lost order.
//!
//! CI runs a short loop; `TILL_CRASH_KILLS=100 TILL_CRASH_CHECKOUTS=5000 cargo test --release
//! --test api crash -- --nocapture` runs the long one by hand.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use till::db::Db;

use crate::both;
use crate::helpers::{Backend, TestDb, API_KEY};

both!(crash_loop_loses_nothing);

const SKUS: usize = 8;
const STOCK_PER_SKU: i64 = 400;
const CLIENTS: usize = 6;
const FAILPOINTS: &str = "after_attempt_commit=0.003,after_gateway_answer=0.003,mid_finalize=0.003";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) struct Till {
    pub(crate) child: Child,
    pub(crate) url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `till serve` process on `db`, its log (stdout and stderr) appended to `log`; `env`
/// adds to or overrides the crash loop's settings.
pub(crate) async fn spawn_till(
    db: &TestDb,
    failpoints: &str,
    log: &std::path::Path,
    env: &[(&str, &str)],
) -> Till {
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let port = free_port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_till"))
            .arg("serve")
            .env("TILL_DATABASE_URL", &db.url)
            .env("TILL_MAIL_DIR", &db.mail_dir)
            .env("TILL_LISTEN", format!("127.0.0.1:{port}"))
            .env("TILL_API_KEY", API_KEY)
            .env("TILL_SIM_DELAY_MS", "30")
            .env("TILL_HOLD_TTL_SECS", "3")
            .env("TILL_RECOVERY_AFTER_SECS", "1")
            .env("TILL_WORKER_TICK_MS", "50")
            .env("TILL_FAILPOINTS", failpoints)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("spawn till");
        let mut till = Till {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if let Ok(resp) = http.get(format!("{}/readyz", till.url)).send().await {
                if resp.status() == 200 {
                    return till;
                }
            }
            if till.child.try_wait().unwrap().is_some() {
                break; // died on a failpoint while finishing earlier work: start another
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = till.child.kill();
        let _ = till.child.wait();
    }
    panic!("till did not become ready (log: {})", log.display());
}

/// The coupon a third of the customers bring; it has fewer uses than there are checkouts.
const COUPON: &str = "CRASH10";

/// One customer: an order for a random SKU (half of them taxed, shipped within the seller's
/// state or to another, a third with the coupon), then a payment by a random method.
async fn checkout(http: &reqwest::Client, url: &str) -> Option<String> {
    let (sku, qty, source, region, coupon) = {
        let mut rng = rand::thread_rng();
        let sources = [
            ("card", "pm_card_visa"),
            ("card", "pm_card_visa"),
            ("card", "pm_card_chargeDeclined"),
            ("upi", "success@razorpay"),
            ("upi", "failure@razorpay"),
            ("wallet", "paytm"),
            ("card", "pm_card_authenticationRequired"),
        ];
        (
            format!("CRASH-{}", rng.gen_range(0..SKUS)),
            rng.gen_range(1..=3),
            sources[rng.gen_range(0..sources.len())],
            ["KA", "MH"][rng.gen_range(0..2)],
            rng.gen_range(0..3) == 0,
        )
    };
    let mut body = json!({"items": [{"sku": sku, "qty": qty}],
                          "ship_to": {"country": "IN", "region": region}});
    if coupon {
        body["coupon"] = json!(COUPON);
    }
    let resp = http
        .post(format!("{url}/v1/orders"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .ok()?;
    if resp.status() != 201 {
        return None;
    }
    let order: serde_json::Value = resp.json().await.ok()?;
    let id = order["id"].as_str()?.to_string();
    let _ = http
        .post(format!("{url}/v1/orders/{id}/payments"))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", till::ids::random_token(12))
        .json(&json!({"method": source.0, "source": source.1}))
        .send()
        .await;
    Some(id)
}

async fn count(db: &Db, sql: &str) -> i64 {
    count_in(&db.pool, sql).await
}

async fn count_in(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn crash_loop_loses_nothing(b: Backend) {
    let kills_wanted = env_usize("TILL_CRASH_KILLS", 4);
    let checkouts_wanted = env_usize("TILL_CRASH_CHECKOUTS", 150);
    let db = TestDb::new(b).await;
    let log = std::env::temp_dir().join(format!("till-crash-{}.log", till::ids::random_token(6)));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let setup = spawn_till(&db, "", &log, &[]).await;
    for i in 0..SKUS {
        let sku = format!("CRASH-{i}");
        let put = |path: String, body| {
            http.put(format!("{}{path}", setup.url))
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
        };
        let mut product = json!({"name": sku, "price": {"amount": 1000, "currency": "INR"}});
        if i % 2 == 0 {
            product["tax_code"] = json!("apparel");
        }
        assert_eq!(
            put(format!("/v1/products/{sku}"), product)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            put(
                format!("/v1/inventory/{sku}/warehouses/w1"),
                json!({"on_hand": STOCK_PER_SKU})
            )
            .await
            .unwrap()
            .status(),
            200
        );
    }
    for (path, body) in [
        (
            "/v1/settings/tax".to_string(),
            json!({"origin": {"country": "IN", "region": "KA"}}),
        ),
        (
            "/v1/tax_codes/apparel".to_string(),
            json!({"hsn": "6109", "rates": [{"country": "IN", "rate_bps": 1800}]}),
        ),
        (
            format!("/v1/coupons/{COUPON}"),
            json!({"kind": "percent", "percent_off": 10, "max_uses": 40}),
        ),
    ] {
        let resp = http
            .put(format!("{}{path}", setup.url))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let mut setup = setup;
    setup.child.kill().unwrap();
    setup.child.wait().unwrap();

    let started = Arc::new(AtomicUsize::new(0));
    let (mut kills, mut self_aborts) = (0, 0);
    while kills < kills_wanted || started.load(Ordering::Relaxed) < checkouts_wanted {
        let mut till = spawn_till(&db, FAILPOINTS, &log, &[]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (http, url, stop, started) = (
                    http.clone(),
                    till.url.clone(),
                    stop.clone(),
                    started.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match checkout(&http, &url).await {
                            Some(_) => {
                                started.fetch_add(1, Ordering::Relaxed);
                            }
                            // Out of stock, or the server is down: do not spin.
                            None => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                })
            })
            .collect();
        let kill_at =
            Instant::now() + Duration::from_millis(rand::thread_rng().gen_range(200..1500));
        loop {
            if till.child.try_wait().unwrap().is_some() {
                self_aborts += 1;
                break;
            }
            if Instant::now() >= kill_at {
                till.child.kill().unwrap(); // SIGKILL
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        till.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        kills += 1;
    }

    // A clean process finishes everything.
    let restarted = Instant::now();
    let mut last = spawn_till(&db, "", &log, &[]).await;
    let checker = Db::connect(&db.url, 2).await.unwrap();
    let mut open = i64::MAX;
    while restarted.elapsed() < Duration::from_secs(60) {
        open = count(&checker, "SELECT COUNT(*) FROM orders WHERE status = 'pending'").await
            + count(&checker, "SELECT COUNT(*) FROM payments WHERE status IN ('processing', 'requires_action', 'authorized')").await
            + count(&checker, "SELECT COUNT(*) FROM refunds WHERE status = 'pending'").await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settle_secs = restarted.elapsed().as_secs_f64();
    last.child.kill().unwrap();
    last.child.wait().unwrap();
    assert_eq!(
        open,
        0,
        "orders or payments still open 60 s after the last restart (log: {})",
        log.display()
    );

    let report = till::verify::check(&checker).await.unwrap();
    assert!(
        report.is_clean(),
        "invariants broken after the crash loop:\n{}",
        report.render()
    );
    // The gateway's side agrees: every capture is kept by a paid order or refunded in full.
    // (Read from the records the killed process's embedded simulator kept.)
    let books = db.books().await;
    let orphan_captures = count_in(
        &books,
        "SELECT COUNT(*) FROM sim_payments s JOIN payments p ON p.id = s.idem_key
         WHERE s.status = 'succeeded' AND NOT (p.status = 'succeeded' OR (p.status = 'refunded' AND s.refunded = s.amount))",
    )
    .await;
    let lost_captures = count_in(&books, "SELECT COUNT(*) FROM payments p LEFT JOIN sim_payments s ON s.idem_key = p.id WHERE p.status IN ('succeeded', 'refunded') AND (s.status IS NULL OR s.status <> 'succeeded')").await;
    let double_charged = count_in(
        &books,
        "SELECT COUNT(*) FROM (SELECT p.order_id FROM sim_payments s JOIN payments p ON p.id = s.idem_key
         WHERE s.status = 'succeeded' AND s.refunded < s.amount GROUP BY p.order_id HAVING COUNT(*) > 1) d",
    )
    .await;
    let oversold = count(
        &checker,
        "SELECT COUNT(*) FROM inventory WHERE on_hand < 0 OR locked > on_hand",
    )
    .await;
    assert_eq!(
        (orphan_captures, lost_captures, double_charged, oversold),
        (0, 0, 0, 0),
        "log: {}",
        log.display()
    );
    let orders = count(&checker, "SELECT COUNT(*) FROM orders").await;
    let confirmed = count(&checker, "SELECT COUNT(*) FROM orders WHERE status IN ('confirmed', 'refunded', 'partially_refunded')").await;
    let sold = count(
        &checker,
        "SELECT CAST(COALESCE(-SUM(delta), 0) AS BIGINT) FROM stock_ledger WHERE kind = 'sale'",
    )
    .await;
    let late_refunds = count(
        &checker,
        "SELECT COUNT(*) FROM refunds WHERE reason <> 'requested'",
    )
    .await;
    let coupon_kept = count(
        &checker,
        "SELECT COUNT(*) FROM coupon_uses WHERE state = 'confirmed'",
    )
    .await;
    let taxed = count(&checker, "SELECT COUNT(*) FROM orders WHERE tax > 0").await;
    println!(
        "crash loop on {b:?}: {kills} kills ({self_aborts} at failpoints, {} by SIGKILL) over {} checkouts (orders created); {orders} orders ({taxed} taxed), {confirmed} paid, {coupon_kept} coupon uses kept, {sold} units sold, {late_refunds} automatic refunds; all terminal {settle_secs:.1}s after the last restart; 0 oversold, 0 double charges, 0 orphan captures",
        kills - self_aborts,
        started.load(Ordering::Relaxed)
    );
    checker.pool.close().await;
    db.drop_db().await;
    let _ = std::fs::remove_file(&log);
}
