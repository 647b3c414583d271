//! Database faults (PostgreSQL): Till reaches the database through a small TCP fault proxy
//! that can cut every connection (an outage) or cut one right after a COMMIT is sent (the
//! commit may apply, its answer is lost); the server also terminates Till's sessions, as a
//! restart does. Till answers 503 while the database is away,
//! `/readyz` says so, nothing is half-applied, and it recovers by itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use till::Workers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{test_config, Backend, TestDb, API_KEY};

/// Forwards to PostgreSQL; `outage` cuts all connections and refuses new ones,
/// `cut_after_commit` drops a connection right after forwarding a COMMIT.
struct FaultProxy {
    port: u16,
    outage: watch::Sender<bool>,
    cut_after_commit: Arc<AtomicBool>,
    commits_cut: Arc<AtomicUsize>,
}

impl FaultProxy {
    async fn start(upstream: &'static str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (outage, outage_rx) = watch::channel(false);
        let cut_after_commit = Arc::new(AtomicBool::new(false));
        let commits_cut = Arc::new(AtomicUsize::new(0));
        let (cut, counted) = (cut_after_commit.clone(), commits_cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *outage_rx.borrow() {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(
                    client,
                    server,
                    outage_rx.clone(),
                    cut.clone(),
                    counted.clone(),
                ));
            }
        });
        FaultProxy {
            port,
            outage,
            cut_after_commit,
            commits_cut,
        }
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mut outage: watch::Receiver<bool>,
    cut: Arc<AtomicBool>,
    counted: Arc<AtomicUsize>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = cr.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            sw.write_all(&buf[..n]).await.ok()?;
            if cut.load(Ordering::Relaxed) && buf[..n].windows(6).any(|w| w == b"COMMIT") {
                counted.fetch_add(1, Ordering::Relaxed);
                return None::<()>; // the server has the COMMIT; the client never hears back
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = sr.read(&mut buf).await.ok().filter(|n| *n > 0)?;
            cw.write_all(&buf[..n]).await.ok()?;
        }
        #[allow(unreachable_code)]
        None::<()>
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = outage.wait_for(|cut| *cut) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_and_recovers() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = FaultProxy::start("127.0.0.1:5432").await;
    let db_name = db.url.rsplit('/').next().unwrap().to_string();
    let mut cfg = test_config(&db);
    cfg.database_url = format!("postgres://postgres@127.0.0.1:{}/{db_name}", proxy.port);
    cfg.sim_delay_ms = 20;
    cfg.hold_ttl_secs = 3;
    cfg.recovery_after_secs = 1;
    let running = till::start(&cfg, till::Clock::default(), Workers::Run)
        .await
        .unwrap();
    let url = running.url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for (path, body) in [
        (
            "/v1/products/DBF-1",
            json!({"name": "x", "price": {"amount": 500, "currency": "INR"}}),
        ),
        (
            "/v1/inventory/DBF-1/warehouses/w1",
            json!({"on_hand": 100000}),
        ),
    ] {
        assert_eq!(
            http.put(format!("{url}{path}"))
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }

    // Load all along: every answer must be 201/409 or a clean 503, never a 500.
    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, stop, unavailable) =
                (http.clone(), url.clone(), stop.clone(), unavailable.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let resp = http
                        .post(format!("{url}/v1/orders"))
                        .bearer_auth(API_KEY)
                        .json(&json!({"items": [{"sku": "DBF-1", "qty": 1}]}))
                        .send()
                        .await;
                    let Ok(resp) = resp else { continue };
                    let status = resp.status().as_u16();
                    if status == 201 {
                        let order: serde_json::Value = resp.json().await.unwrap();
                        let pay = http
                            .post(format!(
                                "{url}/v1/orders/{}/payments",
                                order["id"].as_str().unwrap()
                            ))
                            .bearer_auth(API_KEY)
                            .header("Idempotency-Key", till::ids::random_token(12))
                            .json(&json!({"method": "card", "source": "pm_card_visa"}))
                            .send()
                            .await;
                        if let Ok(pay) = pay {
                            statuses.push(pay.status().as_u16());
                        }
                    }
                    if status == 503 {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    // Answers to COMMIT lost for a while.
    proxy.cut_after_commit.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut_after_commit.store(false, Ordering::Relaxed);
    // The server ends Till's sessions under it, as a PostgreSQL restart does (SQLSTATE 57P01).
    let admin = till::db::Db::connect(&db.url, 1).await.unwrap();
    for _ in 0..3 {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&db_name)
            .execute(&admin.pool)
            .await
            .ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    admin.pool.close().await;
    // A full outage.
    proxy.outage.send(true).unwrap();
    let cut_at = Instant::now();
    let mut saw_not_ready = false;
    while cut_at.elapsed() < Duration::from_secs(15) {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 503
        {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_not_ready, "readyz never reported the outage");
    let during = http
        .post(format!("{url}/v1/orders"))
        .bearer_auth(API_KEY)
        .json(&json!({"items": [{"sku": "DBF-1", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), 503);
    let body: serde_json::Value = during.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.outage.send(false).unwrap();
    let back_at = Instant::now();
    let mut ready = false;
    while back_at.elapsed() < Duration::from_secs(30) {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "readyz did not recover");
    let recovered_secs = back_at.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in load {
        all.extend(task.await.unwrap());
    }
    assert!(
        all.iter().all(|s| matches!(s, 201 | 409 | 503)),
        "unexpected statuses: {:?}",
        all.iter()
            .filter(|s| !matches!(s, 201 | 409 | 503))
            .collect::<Vec<_>>()
    );
    let after = http
        .post(format!("{url}/v1/orders"))
        .bearer_auth(API_KEY)
        .json(&json!({"items": [{"sku": "DBF-1", "qty": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 201, "a checkout after the outage works");

    // Everything settles: pending orders expire, lost answers are asked about again.
    let direct = till::db::Db::connect(&db.url, 2).await.unwrap();
    let settle = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE status IN ('processing', 'requires_action')",
        )
        .fetch_one(&direct.pool)
        .await
        .unwrap();
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'pending'")
                .fetch_one(&direct.pool)
                .await
                .unwrap();
        if open + pending == 0 {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(30),
            "{open} payments and {pending} orders still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = till::verify::check(&direct).await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
    println!(
        "db faults: {} answers ({} were 503), {} COMMIT answers cut, ready again {recovered_secs:.1}s after the outage ended",
        all.len(),
        unavailable.load(Ordering::Relaxed),
        proxy.commits_cut.load(Ordering::Relaxed)
    );
    direct.pool.close().await;
    running.state.db.pool.close().await;
    running.abort();
    db.drop_db().await;
}

/// A pooled connection is not asked whether its server is there each time it is handed out
/// (it was asked as it was given back); one that sat idle for a while is, so a session the
/// server ended meanwhile, as a restart does, is replaced rather than failing the next query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idle_connection_ended_by_the_server_is_replaced() {
    let db = TestDb::new(Backend::Postgres).await;
    let db_name = db.url.rsplit('/').next().unwrap().to_string();
    let till_db = till::db::Db::connect(&db.url, 1).await.unwrap();
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&till_db.pool)
        .await
        .unwrap();
    let admin = till::db::Db::connect(&db.url, 1).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&admin.pool)
        .await
        .unwrap();
    assert!(ended);
    let asked = Instant::now();
    while sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND pid = $2)",
    )
    .bind(&db_name)
    .bind(first)
    .fetch_one(&admin.pool)
    .await
    .unwrap()
    {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "the session is still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&till_db.pool)
        .await
        .expect("an idle connection whose session ended is replaced before it is used");
    assert_ne!(first, second);
    admin.pool.close().await;
    till_db.pool.close().await;
    db.drop_db().await;
}
