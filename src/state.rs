//! The application state every handler and worker shares, built once by `AppState::open`.
//! Over 400 lines: which adapter is pointed where, with which keys, and the simulator Till
//! embeds, are one decision, read in one place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use anyhow::Context;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{random_token, sha256_hex};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::money::Currency;
use crate::payments::gateway::Gateway;
use crate::payments::razorpay::Razorpay;
use crate::payments::simulated::Simulated;
use crate::payments::stripe::Stripe;
use crate::payments::Method;
use crate::relay::amqp::Broker;
use till_gateway_sim::{FaultSpec, SimConfig, Simulator};

/// What every request and worker shares, behind one `Arc`: a request's copy (axum clones
/// the state for each) is one count, not one for each of the fields.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: Db,
    pub clock: Clock,
    pub currency: Currency,
    pub hold_ttl_ms: i64,
    pub recovery_after_ms: i64,
    pub worker_tick_ms: u64,
    /// How often the workers reconcile with the gateways; 0 never.
    pub reconcile_every_ms: u64,
    /// SHA-256 of the API key; the key itself is never kept.
    pub api_key_hash: Arc<String>,
    pub gateways: Arc<HashMap<&'static str, Arc<dyn Gateway>>>,
    /// Which gateway takes which payment method (`TILL_*_GATEWAY`).
    pub routes: MethodGateways,
    /// The gateways whose adapters are pointed at the simulator this Till embeds (no URL
    /// configured for them): not probed, and the reason its routes are served.
    pub embedded: Arc<BTreeSet<&'static str>>,
    /// The embedded simulator (the `till_gateway_sim` crate), present while some payment
    /// method goes to it: its router is mounted on Till's server, its tables sit in Till's
    /// database, and the workers run its webhook sender. Till's adapters reach it only over
    /// HTTP.
    pub sim: Option<Simulator>,
    pub metrics: Arc<Metrics>,
    /// Requests a second per credential (`TILL_RATE_LIMIT_PER_SEC`); 0 is off. The HTTP
    /// edge keeps the buckets.
    pub rate_limit_per_sec: u64,
    /// How long a client may take to send a request's headers, and then its body.
    pub read_timeout: std::time::Duration,
    /// The last probe of each remote gateway: "ok", or what went wrong (for `/readyz`).
    pub gateway_health: Arc<RwLock<BTreeMap<&'static str, String>>>,
    /// Pending orders one customer may hold (`TILL_MAX_PENDING_PER_CUSTOMER`); 0 no limit.
    pub max_pending_per_customer: u32,
    /// SHA-256 of `TILL_METRICS_TOKEN`; `None` leaves `/metrics` open.
    pub metrics_token_hash: Option<Arc<String>>,
    /// RabbitMQ the relay publishes events to (`TILL_AMQP_URL`); `None`: no AMQP sink.
    pub amqp: Option<Arc<Broker>>,
    /// How merchant webhooks are sent and retried (`TILL_WEBHOOK_*`).
    pub webhooks: Arc<crate::notify::webhooks::Settings>,
    /// Customer email: the sender, and the SMTP server or `.eml` directory it goes to.
    pub mail: Arc<Mailer>,
    /// Stripe's publishable key for Stripe.js on the shop's card form: only with a real
    /// Stripe (`TILL_GATEWAY_STRIPE_URL`) and `TILL_STRIPE_PUBLISHABLE_KEY`.
    pub stripe_publishable_key: Option<Arc<str>>,
    /// The orders waiting, per SKU, to be created in one transaction (the flash-sale path).
    pub batches: Arc<crate::checkout::batch::Batches>,
    /// Whether this instance is shutting down (see `Stopping`).
    pub stopping: crate::stopping::Stopping,
}

impl AppState {
    /// Connects, migrates, settles the API key and builds the gateways; `self_url` is where
    /// this Till serves (its listener is bound), so the embedded simulator is reached there.
    pub async fn open(cfg: &Config, clock: Clock, self_url: &str) -> anyhow::Result<AppState> {
        let currency = Currency::parse(&cfg.currency).with_context(|| {
            format!(
                "TILL_CURRENCY {:?} is not a supported currency",
                cfg.currency
            )
        })?;
        anyhow::ensure!(cfg.hold_ttl_secs > 0, "TILL_HOLD_TTL_SECS must be positive");
        anyhow::ensure!(
            cfg.sim_delay_ms >= 0,
            "TILL_SIM_DELAY_MS must not be negative"
        );
        anyhow::ensure!(
            cfg.webhook_retry_hours >= 0,
            "TILL_WEBHOOK_RETRY_HOURS must not be negative"
        );
        anyhow::ensure!(
            cfg.webhook_retry_base_ms > 0 && cfg.webhook_retry_cap_ms > 0,
            "TILL_WEBHOOK_RETRY_BASE_MS and TILL_WEBHOOK_RETRY_CAP_MS must be positive"
        );
        let mail = Mailer::new(
            cfg.smtp_url.as_deref(),
            &cfg.mail_from,
            &cfg.mail_dir,
            cfg.mail_retry_base_ms,
        )?;
        let db = Db::connect(&cfg.database_url, cfg.db_max_connections).await?;
        db.migrate().await?;
        let api_key_hash = settle_api_key(&db, cfg.api_key.as_deref()).await?;
        let (embedded_sim, mut gateways, embedded) = build_gateways(cfg, self_url)?;
        let real_gateway = cfg.stripe_url.is_some() || cfg.razorpay_url.is_some();
        let route = |variable: &str, wanted: &Option<String>, allowed: &[&str]| {
            pick(&gateways, variable, wanted, allowed, real_gateway)
        };
        let routes = MethodGateways {
            card: route(
                "TILL_CARD_GATEWAY",
                &cfg.card_gateway,
                &["sim", "stripe", "razorpay"],
            )?,
            upi: route("TILL_UPI_GATEWAY", &cfg.upi_gateway, &["sim", "razorpay"])?,
            wallet: route(
                "TILL_WALLET_GATEWAY",
                &cfg.wallet_gateway,
                &["sim", "razorpay"],
            )?,
        };
        let in_use = [Method::Card, Method::Upi, Method::Wallet]
            .into_iter()
            .filter_map(|m| routes.of(m))
            .any(|name| embedded.contains(name));
        let sim = match in_use {
            true => {
                Some(embed_simulator(&db, &cfg.database_url, &clock, embedded_sim, self_url).await?)
            }
            // Nothing to reach there: reconciliation and recovery see only real gateways.
            false => {
                gateways.retain(|name, _| !embedded.contains(name));
                None
            }
        };
        Ok(AppState(Arc::new(Shared {
            db,
            clock,
            currency,
            hold_ttl_ms: cfg.hold_ttl_secs.saturating_mul(1000),
            recovery_after_ms: cfg.recovery_after_secs.saturating_mul(1000),
            worker_tick_ms: cfg.worker_tick_ms.max(10),
            reconcile_every_ms: cfg.reconcile_every_secs.saturating_mul(1000),
            api_key_hash: Arc::new(api_key_hash),
            gateways: Arc::new(gateways),
            routes,
            embedded: Arc::new(embedded),
            sim,
            metrics: Arc::new(Metrics::default()),
            rate_limit_per_sec: cfg.rate_limit_per_sec,
            gateway_health: Arc::new(RwLock::new(BTreeMap::new())),
            stopping: Default::default(),
            read_timeout: std::time::Duration::from_millis(cfg.read_timeout_ms.max(1)),
            max_pending_per_customer: cfg.max_pending_per_customer,
            metrics_token_hash: cfg
                .metrics_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| Arc::new(sha256_hex(t.as_bytes()))),
            amqp: match cfg.amqp_url.as_deref().filter(|url| !url.is_empty()) {
                Some(url) => Some(Arc::new(Broker::new(
                    url.into(),
                    cfg.amqp_exchange.clone(),
                )?)),
                None => None,
            },
            webhooks: Arc::new(crate::notify::webhooks::Settings::new(
                std::time::Duration::from_millis(cfg.webhook_timeout_ms.max(1)),
                cfg.webhook_retry_base_ms,
                cfg.webhook_retry_cap_ms,
                cfg.webhook_retry_hours.saturating_mul(3_600_000),
            )),
            mail: Arc::new(mail),
            stripe_publishable_key: cfg
                .stripe_publishable_key
                .as_deref()
                .filter(|_| cfg.stripe_url.is_some())
                .map(Arc::from),
            batches: Arc::default(),
        })))
    }

    /// Probes every remote gateway (a cheap authenticated call) and keeps the result for
    /// `/readyz`; a failure is logged as an error, since payments routed there cannot work.
    pub async fn probe_gateways(&self) {
        let mut names: Vec<&'static str> = self.gateways.keys().copied().collect();
        names.sort();
        for name in names {
            let gateway = &self.gateways[name];
            if self.embedded.contains(name) {
                continue;
            }
            let health = match gateway.probe().await {
                Ok(()) => "ok".to_string(),
                Err(err) => {
                    tracing::error!(gateway = name, error = %err, "gateway probe failed: payments routed to it cannot work");
                    format!("unreachable: {err}")
                }
            };
            self.gateway_health
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, health);
        }
    }

    /// The last probe results, by gateway.
    pub fn gateway_health(&self) -> BTreeMap<&'static str, String> {
        self.gateway_health
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn gateway(&self, name: &str) -> Result<Arc<dyn Gateway>> {
        self.gateways
            .get(name)
            .cloned()
            .ok_or(Error::NotFound("gateway"))
    }

    /// The gateway that takes payments of this method.
    pub fn gateway_for(&self, method: Method) -> Result<Arc<dyn Gateway>> {
        match self.routes.of(method) {
            Some(name) => self.gateway(name),
            None => Err(Error::MethodUnavailable(format!(
                "{} payments are turned off: a real gateway is configured and {} is not set",
                method.as_str(),
                MethodGateways::variable(method)
            ))),
        }
    }

    /// Closes the database pools: Till's, and the embedded simulator's where it has one.
    pub async fn close_databases(&self) {
        self.db.close().await;
        if let Some(sim) = &self.sim {
            sim.close().await;
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Which gateway takes each method; `None` when the method is turned off.
#[derive(Clone, Copy, Debug)]
pub struct MethodGateways {
    pub card: Option<&'static str>,
    pub upi: Option<&'static str>,
    pub wallet: Option<&'static str>,
}

impl MethodGateways {
    pub fn of(&self, method: Method) -> Option<&'static str> {
        match method {
            Method::Card => self.card,
            Method::Upi => self.upi,
            Method::Wallet => self.wallet,
        }
    }

    fn variable(method: Method) -> &'static str {
        match method {
            Method::Card => "TILL_CARD_GATEWAY",
            Method::Upi => "TILL_UPI_GATEWAY",
            Method::Wallet => "TILL_WALLET_GATEWAY",
        }
    }
}

/// The configured gateway for a method, checked against the ones that take it. Unset, a
/// method goes to the simulator — unless a real gateway is configured: then it is turned off
/// (with a warning), so no customer is handed simulated money by default in production.
fn pick(
    gateways: &HashMap<&'static str, Arc<dyn Gateway>>,
    variable: &str,
    wanted: &Option<String>,
    allowed: &[&str],
    real_gateway: bool,
) -> anyhow::Result<Option<&'static str>> {
    let Some(wanted) = wanted else {
        if real_gateway {
            tracing::warn!(
                "{variable} is not set and a real gateway is configured: those payments are turned off (set it, to `sim` to keep the simulator)"
            );
            return Ok(None);
        }
        return Ok(Some("sim"));
    };
    gateways
        .get_key_value(wanted.as_str())
        .map(|(name, _)| Some(*name))
        .filter(|name| name.is_some_and(|n| allowed.contains(&n)))
        .with_context(|| {
            format!(
                "{variable} {wanted:?} is not one of: {}",
                allowed.join(", ")
            )
        })
}

/// Comma-separated secrets (several while one is being rotated), or one random secret the
/// embedded simulator and the adapter share.
fn secrets(configured: &Option<String>, prefix: &str) -> Vec<String> {
    let listed: Vec<String> = configured
        .iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if listed.is_empty() {
        vec![format!("{prefix}{}", random_token(32))]
    } else {
        listed
    }
}

/// Every gateway by name.
type Gateways = HashMap<&'static str, Arc<dyn Gateway>>;

/// The embedded simulator's settings, and the gateways (by name) pointed at it.
type Built = (SimConfig, Gateways, BTreeSet<&'static str>);

/// The adapters, by name, and the settings of the simulator Till embeds. An adapter talks
/// to the embedded simulator's endpoints for its protocol (at `self_url`) unless its URL is
/// configured, in which case its keys must be configured too.
fn build_gateways(cfg: &Config, self_url: &str) -> anyhow::Result<Built> {
    let stripe_key = cfg
        .stripe_secret_key
        .clone()
        .unwrap_or_else(|| format!("sk_test_{}", random_token(24)));
    let stripe_whsec = secrets(&cfg.stripe_webhook_secret, "whsec_");
    let rzp_key_id = cfg
        .razorpay_key_id
        .clone()
        .unwrap_or_else(|| format!("rzp_test_{}", random_token(14)));
    let rzp_secret = cfg
        .razorpay_key_secret
        .clone()
        .unwrap_or_else(|| random_token(24));
    let rzp_whsec = secrets(&cfg.razorpay_webhook_secret, "");
    // The simulator speaks a protocol with the adapter's keys only while the adapter is
    // pointed at it. Beside a real gateway it gets keys of its own, so it can neither answer
    // to the real secret key (an oracle) nor sign events with the real webhook secret.
    let (sim_stripe_key, sim_stripe_whsec) = match &cfg.stripe_url {
        None => (stripe_key.clone(), stripe_whsec[0].clone()),
        Some(_) => (
            format!("sk_test_{}", random_token(24)),
            format!("whsec_{}", random_token(32)),
        ),
    };
    let (sim_rzp_key_id, sim_rzp_secret, sim_rzp_whsec) = match &cfg.razorpay_url {
        None => (rzp_key_id.clone(), rzp_secret.clone(), rzp_whsec[0].clone()),
        Some(_) => (
            format!("rzp_test_{}", random_token(14)),
            random_token(24),
            random_token(32),
        ),
    };
    let sim_webhook_secret = cfg
        .sim_webhook_secret
        .clone()
        .unwrap_or_else(|| random_token(32));
    let sim_api_key = cfg.sim_api_key.clone().unwrap_or_else(|| random_token(32));
    let sim_cfg = SimConfig {
        delay_ms: cfg.sim_delay_ms,
        webhook_secret: sim_webhook_secret.clone(),
        api_key: sim_api_key.clone(),
        stripe_secret_key: sim_stripe_key,
        stripe_webhook_secret: sim_stripe_whsec,
        razorpay_key_id: sim_rzp_key_id,
        razorpay_key_secret: sim_rzp_secret,
        razorpay_webhook_secret: sim_rzp_whsec,
        faults: FaultSpec::parse(cfg.sim_faults.as_deref().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("TILL_SIM_FAULTS: {e}"))?,
    };
    let mut embedded = BTreeSet::new();
    let stripe_base = match &cfg.stripe_url {
        Some(url) => {
            anyhow::ensure!(
                cfg.stripe_secret_key.is_some() && cfg.stripe_webhook_secret.is_some(),
                "TILL_GATEWAY_STRIPE_URL needs TILL_STRIPE_SECRET_KEY and TILL_STRIPE_WEBHOOK_SECRET"
            );
            url.clone()
        }
        None => {
            embedded.insert("stripe");
            format!("{self_url}/sim/stripe")
        }
    };
    let rzp_base = match &cfg.razorpay_url {
        Some(url) => {
            anyhow::ensure!(
                cfg.razorpay_key_id.is_some() && cfg.razorpay_key_secret.is_some() && cfg.razorpay_webhook_secret.is_some(),
                "TILL_GATEWAY_RAZORPAY_URL needs TILL_RAZORPAY_KEY_ID, TILL_RAZORPAY_KEY_SECRET and TILL_RAZORPAY_WEBHOOK_SECRET"
            );
            url.clone()
        }
        None => {
            embedded.insert("razorpay");
            format!("{self_url}/sim/razorpay")
        }
    };
    // The simulator's own protocol: the embedded one, or a gateway elsewhere by its URL.
    let sim_base = match &cfg.sim_url {
        Some(url) => {
            anyhow::ensure!(
                cfg.sim_api_key.is_some() && cfg.sim_webhook_secret.is_some(),
                "TILL_GATEWAY_SIM_URL needs TILL_SIM_API_KEY and TILL_SIM_WEBHOOK_SECRET"
            );
            url.clone()
        }
        None => {
            embedded.insert("sim");
            format!("{self_url}/sim/till")
        }
    };
    let return_url = cfg
        .stripe_return_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/", cfg.listen));
    let stripe = Stripe::new(stripe_base, stripe_key, stripe_whsec, return_url);
    let razorpay = Razorpay::new(rzp_base, rzp_key_id, rzp_secret, rzp_whsec);
    let own = Simulated::new(sim_base, sim_api_key, sim_webhook_secret);
    let mut gateways: Gateways = HashMap::new();
    gateways.insert(own.name(), Arc::new(own));
    gateways.insert(stripe.name(), Arc::new(stripe));
    gateways.insert(razorpay.name(), Arc::new(razorpay));
    Ok((sim_cfg, gateways, embedded))
}

/// The simulator Till embeds: its clock Till's (tests move it), its webhooks to Till's own
/// address, and its records by its own migrations. On a SQLite file they are in a file of
/// their own beside Till's (`embedded_simulator_file`), where its writes never queue behind
/// Till's one writer; what an earlier Till kept for it in Till's file is copied there on the
/// first start. On PostgreSQL, or SQLite in memory, they sit beside Till's tables.
async fn embed_simulator(
    db: &Db,
    database_url: &str,
    clock: &Clock,
    cfg: SimConfig,
    self_url: &str,
) -> anyhow::Result<Simulator> {
    let pool = match crate::db::sqlite_file(database_url) {
        Some(till_file) => {
            let own = embedded_simulator_file(till_file);
            let pool = till_gateway_sim::connect(&format!("sqlite://{own}")).await?;
            till_gateway_sim::migrate(&pool).await?;
            till_gateway_sim::take_over_records(&pool, till_file).await?;
            pool
        }
        None => {
            till_gateway_sim::migrate(&db.pool).await?;
            db.pool.clone()
        }
    };
    let clock = clock.clone();
    let sim = Simulator::new(
        pool,
        till_gateway_sim::Clock::from_fn(move || clock.now_ms()),
        cfg,
    );
    sim.set_till_url(self_url.to_string());
    Ok(sim)
}

/// Where the embedded simulator keeps its records beside Till's SQLite file at `till_file`:
/// `till.db` gives `till.gateway-sim.db`.
pub fn embedded_simulator_file(till_file: &str) -> String {
    let stem = till_file.strip_suffix(".db").unwrap_or(till_file);
    format!("{stem}.gateway-sim.db")
}

/// With `TILL_API_KEY` set, that key is the one. Without it, the key generated on first
/// start (and printed then, once) stays; only its hash is stored.
async fn settle_api_key(db: &Db, configured: Option<&str>) -> anyhow::Result<String> {
    if let Some(key) = configured {
        anyhow::ensure!(!key.is_empty(), "TILL_API_KEY must not be empty");
        return Ok(sha256_hex(key.as_bytes()));
    }
    let mut conn = db.pool.acquire().await?;
    if let Some(hash) = crate::db::setting(&mut conn, API_KEY_SETTING).await? {
        return Ok(hash);
    }
    let key = format!("till_sk_{}", random_token(32));
    let hash = sha256_hex(key.as_bytes());
    let kept = crate::db::setting_or_insert(&mut conn, API_KEY_SETTING, &hash).await?;
    if kept == hash {
        // Printed to stdout once, deliberately not through the log.
        println!("till: generated API key (shown once, store it now): {key}");
    }
    Ok(kept)
}

/// The setting that keeps the hash of the generated API key.
const API_KEY_SETTING: &str = "api_key_sha256";
