//! The test harness: a real Till on a random port over a fresh database (a new SQLite file
//! or a new PostgreSQL database per test), one helper per endpoint, and the invariant check
//! every test ends with.
//!
//! Over 400 lines: one helper per endpoint the tests call, kept together so a test reads as
//! a list of API calls.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use till::{Clock, Config, Running, Workers};

pub const API_KEY: &str = "test_sk_api_key";

/// Where the PostgreSQL tests find their server; each test creates its own database there.
fn pg_base_url() -> String {
    std::env::var("TILL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Connection parameters for the PostgreSQL tests' databases (`TILL_TEST_PG_PARAMS`, e.g.
/// `?sslmode=require`: CI runs the PostgreSQL tests once more over TLS with it).
fn pg_url_params() -> String {
    std::env::var("TILL_TEST_PG_PARAMS").unwrap_or_default()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests from `async fn name(Backend)`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// A database that outlives one server (so a test can restart Till on it).
pub struct TestDb {
    pub url: String,
    /// Where this test's Till writes customer email as `.eml` files (no SMTP server).
    pub mail_dir: std::path::PathBuf,

    pg_name: Option<String>,
    sqlite_dir: Option<std::path::PathBuf>,
    /// Set once the database is gone, so `Drop` (a failed test) does not try again.
    dropped: std::sync::atomic::AtomicBool,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let suffix = till::ids::random_token(12).to_lowercase();
        let mail_dir = std::env::temp_dir().join(format!("till-test-mail-{suffix}"));
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("till-test-{suffix}"));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                TestDb {
                    url: format!("sqlite://{}", dir.join("till.db").display()),
                    mail_dir,
                    pg_name: None,
                    sqlite_dir: Some(dir),
                    dropped: Default::default(),
                }
            }
            Backend::Postgres => {
                let name = format!("till_test_{suffix}");
                admin_pg(&format!("CREATE DATABASE {name}")).await;
                TestDb {
                    url: format!("{}/{name}{}", pg_base_url(), pg_url_params()),
                    mail_dir,
                    pg_name: Some(name),
                    sqlite_dir: None,
                    dropped: Default::default(),
                }
            }
        }
    }

    /// One connection that sees Till's tables and the embedded simulator's, to compare the
    /// gateway's books with Till's: on SQLite the simulator's file is attached beside Till's.
    pub async fn books(&self) -> sqlx::AnyPool {
        till_sqlite::install_drivers();
        let options = sqlx::any::AnyPoolOptions::new().max_connections(1);
        let options = match till::db::sqlite_file(&self.url) {
            Some(file) => {
                let gateway = till::state::embedded_simulator_file(file);
                options.after_connect(move |conn, _meta| {
                    let gateway = gateway.clone();
                    Box::pin(async move {
                        sqlx::query("ATTACH DATABASE $1 AS gateway")
                            .bind(gateway)
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                })
            }
            None => options,
        };
        options
            .connect(&self.url)
            .await
            .expect("connect to read the books")
    }

    pub async fn drop_db(&self) {
        if self.dropped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(name) = &self.pg_name {
            admin_pg(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        }
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_dir_all(&self.mail_dir);
    }
}

/// A test that fails (panics) before `finish` still leaves no database behind. Dropping
/// one needs async I/O, and `Drop` may run inside the test's runtime, so it gets a thread
/// and a runtime of its own.
impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let name = self.pg_name.clone();
        let dir = self.sqlite_dir.clone();
        let _ = std::fs::remove_dir_all(&self.mail_dir);
        let cleaned = std::thread::spawn(move || {
            if let Some(name) = name {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for dropping the test database");
                runtime.block_on(admin_pg(&format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            }
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .join();
        if cleaned.is_err() {
            eprintln!("could not drop a test database");
        }
    }
}

async fn admin_pg(sql: &str) {
    use sqlx::{Connection, Executor};
    till_sqlite::install_drivers();
    let url = format!("{}/postgres", pg_base_url());
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for these tests and is unreachable at {url}: {e}")
        });
    conn.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn test_config(db: &TestDb) -> Config {
    let mut cfg = Config::defaults();
    cfg.listen = "127.0.0.1:0".into();
    cfg.database_url = db.url.clone();
    cfg.api_key = Some(API_KEY.into());
    cfg.sim_delay_ms = 50;
    cfg.worker_tick_ms = 20;
    cfg.db_max_connections = 10;
    cfg.mail_dir = db.mail_dir.display().to_string();
    cfg
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: Clock,
    pub db: TestDb,
    running: Option<Running>,
}

impl TestApp {
    /// Till with its workers running, on a fresh database.
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, Workers::Run, |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        workers: Workers,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut cfg = test_config(&db);
        configure(&mut cfg);
        let clock = Clock::default();
        let running = till::start(&cfg, clock.clone(), workers)
            .await
            .expect("start till");
        TestApp {
            url: running.url(),
            http: reqwest::Client::new(),
            clock,
            db,
            running: Some(running),
        }
    }

    /// Stops this server abruptly and starts a new one on the same database.
    pub async fn restart(&mut self, workers: Workers, configure: impl FnOnce(&mut Config)) {
        self.stop().await;
        let mut cfg = test_config(&self.db);
        configure(&mut cfg);
        let running = till::start(&cfg, self.clock.clone(), workers)
            .await
            .expect("restart till");
        self.url = running.url();
        self.running = Some(running);
    }

    /// Stops the server without starting another (the database stays).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.state.close_databases().await;
            running.abort();
        }
    }

    /// The running server, for a test that stops it its own way (`Running::shutdown`).
    pub fn take_running(&mut self) -> Running {
        self.running.take().expect("server is running")
    }

    pub fn state(&self) -> &till::AppState {
        &self.running.as_ref().expect("server is running").state
    }

    /// The simulator this Till embeds (some payment method goes to it).
    pub fn sim(&self) -> &till_gateway_sim::Simulator {
        self.state()
            .sim
            .as_ref()
            .expect("a payment method goes to the embedded simulator")
    }

    /// The expiry sweeper's own transaction (expire, release the stock, decide to void what
    /// is in flight) without carrying out its gateway void, so a late answer meets an order
    /// that has already ended.
    pub async fn expire_without_voiding(&self, id: &str) {
        use till::orders::{CancelReason, Status};
        self.end_without_voiding(id, Status::Expired, CancelReason::Expired)
            .await;
    }

    /// A customer's cancel, its transaction only (see `expire_without_voiding`).
    pub async fn cancel_without_voiding(&self, id: &str) {
        use till::orders::{CancelReason, Status};
        self.end_without_voiding(id, Status::Cancelled, CancelReason::Customer)
            .await;
    }

    async fn end_without_voiding(
        &self,
        id: &str,
        to: till::orders::Status,
        reason: till::orders::CancelReason,
    ) {
        use sqlx::Connection;
        let state = self.state();
        let mut conn = state.db.pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let id = till::ids::OrderId::from(id);
        till::orders::store::lock_row(&mut tx, &id).await.unwrap();
        let decided =
            till::checkout::finalize::end_in_tx(state, &mut tx, &id, to, reason, state.now_ms())
                .await
                .unwrap();
        assert!(decided.is_some(), "order {id} was not pending");
        tx.commit().await.unwrap();
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics read")
    }

    /// Runs every worker step once, as the background loop would.
    pub async fn run_workers(&self) {
        till::checkout::workers::run_once(self.state())
            .await
            .expect("worker pass");
        till::relay::run_once(self.state())
            .await
            .expect("relay pass");
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
    }

    /// A request with the API key and `body` sent as it is, as JSON.
    pub fn raw_json(&self, method: Method, path: &str, body: &str) -> RequestBuilder {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    pub async fn send(&self, req: RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body read");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    pub async fn put_product(&self, sku: &str, amount: i64) {
        let body = json!({"name": format!("Product {sku}"), "price": {"amount": amount, "currency": "INR"}, "tax_code": "apparel"});
        let (status, body) = self
            .call(Method::PUT, &format!("/v1/products/{sku}"), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn set_stock(&self, sku: &str, warehouse: &str, on_hand: i64) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v1/inventory/{sku}/warehouses/{warehouse}"),
            Some(json!({"on_hand": on_hand})),
        )
        .await
    }

    /// A product with stock in one warehouse.
    pub async fn stocked(&self, sku: &str, amount: i64, on_hand: i64) {
        self.put_product(sku, amount).await;
        let (status, body) = self.set_stock(sku, "blr-1", on_hand).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// `(on_hand, locked)` of a SKU over all warehouses.
    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        let inv = self.inventory(sku).await;
        (
            inv["on_hand"].as_i64().unwrap(),
            inv["locked"].as_i64().unwrap(),
        )
    }

    /// Creates an order that must succeed; returns its id.
    pub async fn new_order(&self, sku: &str, qty: i64) -> String {
        self.order_of(sku, qty).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn inventory(&self, sku: &str) -> Value {
        let (status, body) = self
            .call(Method::GET, &format!("/v1/inventory/{sku}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn create_order(&self, items: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/orders",
            // A customer of its own per order, so tests making many orders stay under
            // `TILL_MAX_PENDING_PER_CUSTOMER`.
            Some(json!({"customer": {"id": format!("u_{}", till::ids::random_token(10)), "email": "asha@example.com"}, "items": items})),
        )
        .await
    }

    /// Creates an order that must succeed; returns it.
    pub async fn order_of(&self, sku: &str, qty: i64) -> Value {
        let (status, body) = self.create_order(json!([{"sku": sku, "qty": qty}])).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn pay(&self, order_id: &str, method: &str, source: &str) -> (StatusCode, Value) {
        let req = self
            .request(Method::POST, &format!("/v1/orders/{order_id}/payments"))
            .header("Idempotency-Key", till::ids::random_token(16))
            .json(&json!({"method": method, "source": source}));
        self.send(req).await
    }

    pub async fn order(&self, id: &str) -> Value {
        let (status, body) = self
            .call(Method::GET, &format!("/v1/orders/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls until the order reaches `status` (asynchronous outcomes arrive by webhook).
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..400 {
            last = self.order(id).await;
            if last["status"] == status {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("order {id} never became {status}; last seen {last}");
    }

    /// One order of each ending, on a 60 s hold (`hold_ttl_secs = 60`): `paid` (2 × TEE-1
    /// at 49,900) and refunded 10,000, `declined` (its card refused), and `expired` (the
    /// clock moved past its hold; the workers have not run yet).
    pub async fn one_of_each_outcome(&self) -> Outcomes {
        self.stocked("TEE-1", 49_900, 10).await;
        let paid = self.new_order("TEE-1", 2).await;
        assert_eq!(self.pay(&paid, "card", "pm_card_visa").await.0, 201);
        let (status, refund) = self
            .call(
                Method::POST,
                &format!("/v1/orders/{paid}/refunds"),
                Some(json!({"amount": 10_000})),
            )
            .await;
        assert_eq!(status, 201, "{refund}");
        let declined = self.new_order("TEE-1", 1).await;
        self.pay(&declined, "card", "pm_card_chargeDeclined").await;
        let expired = self.new_order("TEE-1", 1).await;
        self.clock.advance_ms(61_000);
        Outcomes {
            paid,
            refund,
            declined,
            expired,
        }
    }

    /// Checks the invariants, stops the server and drops the database.
    pub async fn finish(self) {
        let report = till::verify::check(&self.state().db)
            .await
            .expect("verify runs");
        assert!(report.is_clean(), "invariants broken:\n{}", report.render());
        self.close().await;
    }

    /// Stops the server and drops the database, checking nothing (for tests that ran the
    /// invariant check themselves and report its findings).
    pub async fn close(mut self) {
        self.stop().await;
        self.db.drop_db().await;
    }
}

/// The orders `TestApp::one_of_each_outcome` made, and the refund.
pub struct Outcomes {
    pub paid: String,
    pub refund: Value,
    pub declined: String,
    pub expired: String,
}

/// A documented route as a request: its method, and its path with example parameters.
pub fn route_example(route: &till::http::openapi::RouteDoc) -> (Method, String) {
    let path = route
        .path
        .replace("{sku}", "TEE-1")
        .replace("{warehouse}", "blr-1")
        .replace("{id}", "ord_x")
        .replace("{refund_id}", "re_x")
        .replace("{gateway}", "sim")
        .replace("{code}", "SAVE10")
        .replace("{tax_code}", "apparel")
        .replace("{endpoint_id}", "we_x")
        .replace("{event_id}", "evt_x");
    let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
    (method, path)
}

/// Asserts an API error: status and `error.code`.
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
}
