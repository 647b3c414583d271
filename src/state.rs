//! The application state every handler and worker shares, built once by `AppState::open`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::rate_limit::RateLimiter;
use crate::ids::{random_token, sha256_hex};
use crate::metrics::Metrics;
use crate::money::Currency;
use crate::payments::gateway::Gateway;
use crate::payments::razorpay::{Base as RazorpayBase, Razorpay};
use crate::payments::sim::faults::FaultSpec;
use crate::payments::sim::{SimConfig, Simulator};
use crate::payments::stripe::{Base as StripeBase, Stripe};
use crate::payments::Method;

#[derive(Clone)]
pub struct AppState {
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
    pub sim: Simulator,
    pub metrics: Arc<Metrics>,
    pub rate_limiter: Arc<RateLimiter>,
}

impl AppState {
    /// Connects, migrates, settles the API key and builds the gateways.
    pub async fn open(cfg: &Config, clock: Clock) -> anyhow::Result<AppState> {
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
        let db = Db::connect(&cfg.database_url, cfg.db_max_connections).await?;
        db.migrate().await?;
        let api_key_hash = settle_api_key(&db, cfg.api_key.as_deref()).await?;
        let (sim, gateways) = build_gateways(cfg, &db, &clock)?;
        let routes = MethodGateways {
            card: pick(
                &gateways,
                "TILL_CARD_GATEWAY",
                &cfg.card_gateway,
                &["sim", "stripe", "razorpay"],
            )?,
            upi: pick(
                &gateways,
                "TILL_UPI_GATEWAY",
                &cfg.upi_gateway,
                &["sim", "razorpay"],
            )?,
            wallet: pick(
                &gateways,
                "TILL_WALLET_GATEWAY",
                &cfg.wallet_gateway,
                &["sim", "razorpay"],
            )?,
        };
        Ok(AppState {
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
            sim,
            metrics: Arc::new(Metrics::default()),
            rate_limiter: Arc::new(RateLimiter::new(cfg.rate_limit_per_sec)),
        })
    }

    pub fn gateway(&self, name: &str) -> Result<Arc<dyn Gateway>> {
        self.gateways
            .get(name)
            .cloned()
            .ok_or(Error::NotFound("gateway"))
    }

    /// The gateway that takes payments of this method.
    pub fn gateway_for(&self, method: Method) -> Result<Arc<dyn Gateway>> {
        self.gateway(match method {
            Method::Card => self.routes.card,
            Method::Upi => self.routes.upi,
            Method::Wallet => self.routes.wallet,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MethodGateways {
    pub card: &'static str,
    pub upi: &'static str,
    pub wallet: &'static str,
}

/// The configured gateway for a method, checked against the ones that take it.
fn pick(
    gateways: &HashMap<&'static str, Arc<dyn Gateway>>,
    variable: &str,
    wanted: &str,
    allowed: &[&str],
) -> anyhow::Result<&'static str> {
    gateways
        .get_key_value(wanted)
        .map(|(name, _)| *name)
        .filter(|name| allowed.contains(name))
        .with_context(|| {
            format!(
                "{variable} {wanted:?} is not one of: {}",
                allowed.join(", ")
            )
        })
}

/// Comma-separated secrets (several while one is being rotated), or one random secret the
/// in-process simulator and the adapter share.
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

/// The simulator (always there: the default gateway) and the adapters, by name. An adapter
/// talks to the simulator's endpoints for its protocol unless its URL is configured, in
/// which case its keys must be configured too.
fn build_gateways(
    cfg: &Config,
    db: &Db,
    clock: &Clock,
) -> anyhow::Result<(Simulator, HashMap<&'static str, Arc<dyn Gateway>>)> {
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
    let sim = Simulator::new(
        db.clone(),
        clock.clone(),
        SimConfig {
            delay_ms: cfg.sim_delay_ms,
            webhook_secret: cfg
                .sim_webhook_secret
                .clone()
                .unwrap_or_else(|| random_token(32)),
            stripe_secret_key: stripe_key.clone(),
            stripe_webhook_secret: stripe_whsec[0].clone(),
            razorpay_key_id: rzp_key_id.clone(),
            razorpay_key_secret: rzp_secret.clone(),
            razorpay_webhook_secret: rzp_whsec[0].clone(),
            faults: FaultSpec::parse(cfg.sim_faults.as_deref().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("TILL_SIM_FAULTS: {e}"))?,
        },
    );
    let stripe_base = match &cfg.stripe_url {
        Some(url) => {
            anyhow::ensure!(
                cfg.stripe_secret_key.is_some() && cfg.stripe_webhook_secret.is_some(),
                "TILL_GATEWAY_STRIPE_URL needs TILL_STRIPE_SECRET_KEY and TILL_STRIPE_WEBHOOK_SECRET"
            );
            StripeBase::Url(url.clone())
        }
        None => StripeBase::Simulator(sim.clone()),
    };
    let rzp_base = match &cfg.razorpay_url {
        Some(url) => {
            anyhow::ensure!(
                cfg.razorpay_key_id.is_some() && cfg.razorpay_key_secret.is_some() && cfg.razorpay_webhook_secret.is_some(),
                "TILL_GATEWAY_RAZORPAY_URL needs TILL_RAZORPAY_KEY_ID, TILL_RAZORPAY_KEY_SECRET and TILL_RAZORPAY_WEBHOOK_SECRET"
            );
            RazorpayBase::Url(url.clone())
        }
        None => RazorpayBase::Simulator(sim.clone()),
    };
    let return_url = cfg
        .stripe_return_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/", cfg.listen));
    let stripe = Stripe::new(stripe_base, stripe_key, stripe_whsec, return_url);
    let razorpay = Razorpay::new(rzp_base, rzp_key_id, rzp_secret, rzp_whsec);
    let mut gateways: HashMap<&'static str, Arc<dyn Gateway>> = HashMap::new();
    gateways.insert(sim.name(), Arc::new(sim.clone()));
    gateways.insert(stripe.name(), Arc::new(stripe));
    gateways.insert(razorpay.name(), Arc::new(razorpay));
    Ok((sim, gateways))
}

/// With `TILL_API_KEY` set, that key is the one. Without it, the key generated on first
/// start (and printed then, once) stays; only its hash is stored.
async fn settle_api_key(db: &Db, configured: Option<&str>) -> anyhow::Result<String> {
    if let Some(key) = configured {
        anyhow::ensure!(!key.is_empty(), "TILL_API_KEY must not be empty");
        return Ok(sha256_hex(key.as_bytes()));
    }
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE name = 'api_key_sha256'")
            .fetch_optional(&db.pool)
            .await?;
    if let Some(hash) = stored {
        return Ok(hash);
    }
    let key = format!("till_sk_{}", random_token(32));
    let hash = sha256_hex(key.as_bytes());
    let inserted = sqlx::query(
        "INSERT INTO settings (name, value) VALUES ('api_key_sha256', $1) ON CONFLICT DO NOTHING",
    )
    .bind(&hash)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        // Printed to stdout once, deliberately not through the log.
        println!("till: generated API key (shown once, store it now): {key}");
        Ok(hash)
    } else {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'api_key_sha256'")
                .fetch_one(&db.pool)
                .await?,
        )
    }
}
