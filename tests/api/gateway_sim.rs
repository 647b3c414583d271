//! `till gateway-sim` as a process of its own, the way the real gateways are reached: Till is
//! pointed at it by base URL and keys only. The helper starts it next to a TestApp, reads its
//! books back over its Stripe and Razorpay list endpoints, and stops it when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use till::{Config, Workers};

use crate::helpers::{Backend, TestApp};

pub const STRIPE_SECRET_KEY: &str = "sk_test_gateway_sim";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_gateway_sim";
pub const RAZORPAY_KEY_ID: &str = "rzp_test_gateway_sim";
pub const RAZORPAY_KEY_SECRET: &str = "rzp_secret_gateway_sim";
pub const RAZORPAY_WEBHOOK_SECRET: &str = "rzp_whsec_gateway_sim";
pub const SIM_API_KEY: &str = "sim_key_gateway_sim";
pub const SIM_WEBHOOK_SECRET: &str = "sim_whsec_gateway_sim";

/// How long the simulator process gets to start listening.
const STARTUP_POLLS_MAX: usize = 400;

/// The simulator's settings: fault knobs (`--faults`) and the delay of asynchronous outcomes.
#[derive(Clone, Debug)]
pub struct SimSpec {
    pub faults: String,
    pub delay_ms: i64,
}

impl SimSpec {
    pub fn latency(latency_ms: u64) -> SimSpec {
        SimSpec {
            faults: format!("latency_ms={latency_ms}"),
            delay_ms: 50,
        }
    }
}

pub struct GatewaySim {
    pub url: String,
    /// The simulator's books, read over its own API.
    pub ledger: Ledger,
    child: Child,
    db_path: PathBuf,
}

/// A simulated gateway's Stripe and Razorpay books, read over HTTP with this helper's keys:
/// at a `till gateway-sim` process, or at Till's own address for the embedded simulator.
pub struct Ledger {
    url: String,
    http: reqwest::Client,
    /// The simulator's own protocol is read over HTTP too (a `till gateway-sim`); the
    /// embedded one's through its handle (`Simulator::own_payments`).
    own_protocol: bool,
}

/// Sends every method to the simulator's own protocol at a `till gateway-sim` (`base`).
pub fn own_protocol_at(cfg: &mut Config, base: &str) {
    cfg.card_gateway = Some("sim".into());
    cfg.upi_gateway = Some("sim".into());
    cfg.wallet_gateway = Some("sim".into());
    cfg.sim_url = Some(format!("{base}/sim/till"));
    cfg.sim_api_key = Some(SIM_API_KEY.into());
    cfg.sim_webhook_secret = Some(SIM_WEBHOOK_SECRET.into());
}

/// Points Till's Stripe and Razorpay adapters at `base` with this helper's keys.
pub fn use_gateways_at(cfg: &mut Config, base: Option<&str>) {
    cfg.card_gateway = Some("stripe".into());
    cfg.upi_gateway = Some("razorpay".into());
    cfg.wallet_gateway = Some("razorpay".into());
    cfg.stripe_url = base.map(|b| format!("{b}/sim/stripe"));
    cfg.stripe_secret_key = Some(STRIPE_SECRET_KEY.into());
    cfg.stripe_webhook_secret = Some(STRIPE_WEBHOOK_SECRET.into());
    cfg.razorpay_url = base.map(|b| format!("{b}/sim/razorpay"));
    cfg.razorpay_key_id = Some(RAZORPAY_KEY_ID.into());
    cfg.razorpay_key_secret = Some(RAZORPAY_KEY_SECRET.into());
    cfg.razorpay_webhook_secret = Some(RAZORPAY_WEBHOOK_SECRET.into());
}

/// Till with its workers running, cards on Stripe and UPI and wallets on Razorpay, both at a
/// `till gateway-sim` process started for it; `configure` may change the rest (for instance
/// send wallets to the embedded simulator).
pub async fn spawn_with_gateway_sim(
    backend: Backend,
    spec: &SimSpec,
    configure: impl FnOnce(&mut Config),
) -> (TestApp, GatewaySim) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with(backend, Workers::Run, |cfg| {
        use_gateways_at(cfg, Some(&base));
        configure(cfg);
        // Its own protocol, where `configure` chose it, is this process's too.
        if cfg.card_gateway.as_deref() == Some("sim") && cfg.sim_url.is_none() {
            own_protocol_at(cfg, &base);
        }
    })
    .await;
    let sim = GatewaySim::start(port, &app.url, spec).await;
    (app, sim)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

impl GatewaySim {
    /// Starts `till gateway-sim` on `port` with its own SQLite database, sending its webhooks
    /// to `till_url`; returns once it accepts connections. Its log goes next to its database.
    async fn start(port: u16, till_url: &str, spec: &SimSpec) -> GatewaySim {
        let dir = std::env::temp_dir().join(format!(
            "till-gateway-sim-{}",
            till::ids::random_token(8).to_lowercase()
        ));
        std::fs::create_dir_all(&dir).expect("create the simulator's directory");
        let log = std::fs::File::create(dir.join("gateway-sim.log")).expect("simulator log");
        let child = Command::new(env!("CARGO_BIN_EXE_till"))
            .arg("gateway-sim")
            .env("TILL_SIM_LISTEN", format!("127.0.0.1:{port}"))
            .env("TILL_SIM_TILL_URL", till_url)
            .env(
                "TILL_SIM_DATABASE_URL",
                format!("sqlite://{}", dir.join("sim.db").display()),
            )
            .env("TILL_SIM_DELAY_MS", spec.delay_ms.to_string())
            .env("TILL_SIM_FAULTS", &spec.faults)
            .env("TILL_STRIPE_SECRET_KEY", STRIPE_SECRET_KEY)
            .env("TILL_STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_SECRET)
            .env("TILL_RAZORPAY_KEY_ID", RAZORPAY_KEY_ID)
            .env("TILL_RAZORPAY_KEY_SECRET", RAZORPAY_KEY_SECRET)
            .env("TILL_RAZORPAY_WEBHOOK_SECRET", RAZORPAY_WEBHOOK_SECRET)
            .env("TILL_SIM_API_KEY", SIM_API_KEY)
            .env("TILL_SIM_WEBHOOK_SECRET", SIM_WEBHOOK_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start till gateway-sim");
        let url = format!("http://127.0.0.1:{port}");
        let mut sim = GatewaySim {
            ledger: Ledger::of_process(&url),
            url,
            child,
            db_path: dir,
        };
        for _ in 0..STARTUP_POLLS_MAX {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sim;
            }
            if let Ok(Some(status)) = sim.child.try_wait() {
                panic!("till gateway-sim exited at start: {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("till gateway-sim never listened on {port}");
    }
}

impl Ledger {
    /// The books of a `till gateway-sim` process at `url`, its own protocol included.
    pub fn of_process(url: &str) -> Ledger {
        Ledger {
            own_protocol: true,
            ..Ledger::at(url)
        }
    }

    pub fn at(url: &str) -> Ledger {
        Ledger {
            url: url.to_string(),
            http: reqwest::Client::new(),
            own_protocol: false,
        }
    }

    async fn get(
        &self,
        path: &str,
        auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Value {
        let resp = auth(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .expect("gateway-sim answers");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("gateway-sim answers JSON")
    }

    /// Every PaymentIntent the simulated Stripe holds, paging with `starting_after`.
    pub async fn stripe_intents(&self) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let mut path = "/sim/stripe/v1/payment_intents?limit=100".to_string();
            if let Some(last) = all.last() {
                path.push_str(&format!("&starting_after={}", last["id"].as_str().unwrap()));
            }
            let page = self.get(&path, |r| r.bearer_auth(STRIPE_SECRET_KEY)).await;
            all.extend(page["data"].as_array().cloned().unwrap_or_default());
            if page["has_more"] != true {
                return all;
            }
        }
    }

    /// Every payment of the simulator's own protocol, when it is read over HTTP.
    pub async fn own_payments(&self) -> Vec<Value> {
        if !self.own_protocol {
            return Vec::new();
        }
        let page = self
            .get("/sim/till/v1/payments?since=0", |r| {
                r.bearer_auth(SIM_API_KEY)
            })
            .await;
        page["data"].as_array().cloned().unwrap_or_default()
    }

    /// Every payment the simulated Razorpay holds, paging with `count` and `skip`.
    pub async fn razorpay_payments(&self) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let path = format!("/sim/razorpay/v1/payments?count=100&skip={}", all.len());
            let page = self
                .get(&path, |r| {
                    r.basic_auth(RAZORPAY_KEY_ID, Some(RAZORPAY_KEY_SECRET))
                })
                .await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let got = items.len();
            all.extend(items);
            if got < 100 {
                return all;
            }
        }
    }
}

impl Drop for GatewaySim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.db_path);
    }
}
