//! The application state every handler and worker shares, built once by `AppState::open`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::{random_token, sha256_hex};
use crate::metrics::Metrics;
use crate::money::Currency;
use crate::payments::gateway::Gateway;
use crate::payments::sim::{SimConfig, Simulator};
use crate::payments::stripe::{Base as StripeBase, Stripe};
use crate::payments::Method;

/// The gateway a payment goes through when the client names none.
pub const DEFAULT_GATEWAY: &str = "sim";

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: Clock,
    pub currency: Currency,
    pub hold_ttl_ms: i64,
    pub recovery_after_ms: i64,
    pub worker_tick_ms: u64,
    /// SHA-256 of the API key; the key itself is never kept.
    pub api_key_hash: Arc<String>,
    pub gateways: Arc<HashMap<&'static str, Arc<dyn Gateway>>>,
    /// The gateway card payments go through (`TILL_CARD_GATEWAY`).
    pub card_gateway: &'static str,
    pub sim: Simulator,
    pub metrics: Arc<Metrics>,
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
        let card_gateway = gateways
            .get_key_value(cfg.card_gateway.as_str())
            .map(|(name, _)| *name)
            .with_context(|| {
                format!(
                    "TILL_CARD_GATEWAY {:?} is not one of: sim, stripe",
                    cfg.card_gateway
                )
            })?;
        Ok(AppState {
            db,
            clock,
            currency,
            hold_ttl_ms: cfg.hold_ttl_secs.saturating_mul(1000),
            recovery_after_ms: cfg.recovery_after_secs.saturating_mul(1000),
            worker_tick_ms: cfg.worker_tick_ms.max(10),
            api_key_hash: Arc::new(api_key_hash),
            gateways: Arc::new(gateways),
            card_gateway,
            sim,
            metrics: Arc::new(Metrics::default()),
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
        match method {
            Method::Card => self.gateway(self.card_gateway),
            Method::Upi | Method::Wallet => self.gateway(DEFAULT_GATEWAY),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The simulator (always there: the default gateway) and every adapter, by name. Stripe
/// talks to the simulator's Stripe endpoints unless a Stripe URL is configured, in which
/// case its keys must be configured too.
fn build_gateways(
    cfg: &Config,
    db: &Db,
    clock: &Clock,
) -> anyhow::Result<(Simulator, HashMap<&'static str, Arc<dyn Gateway>>)> {
    let stripe_secret_key = cfg
        .stripe_secret_key
        .clone()
        .unwrap_or_else(|| format!("sk_test_{}", random_token(24)));
    let stripe_webhook_secrets: Vec<String> = match &cfg.stripe_webhook_secret {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        None => vec![format!("whsec_{}", random_token(32))],
    };
    let sim = Simulator::new(
        db.clone(),
        clock.clone(),
        SimConfig {
            delay_ms: cfg.sim_delay_ms,
            webhook_secret: cfg
                .sim_webhook_secret
                .clone()
                .unwrap_or_else(|| random_token(32)),
            stripe_secret_key: stripe_secret_key.clone(),
            stripe_webhook_secret: stripe_webhook_secrets[0].clone(),
        },
    );
    let base = match &cfg.stripe_url {
        Some(url) => {
            anyhow::ensure!(
                cfg.stripe_secret_key.is_some() && cfg.stripe_webhook_secret.is_some(),
                "TILL_GATEWAY_STRIPE_URL needs TILL_STRIPE_SECRET_KEY and TILL_STRIPE_WEBHOOK_SECRET"
            );
            StripeBase::Url(url.clone())
        }
        None => StripeBase::Simulator(sim.clone()),
    };
    let stripe = Stripe::new(base, stripe_secret_key, stripe_webhook_secrets);
    let mut gateways: HashMap<&'static str, Arc<dyn Gateway>> = HashMap::new();
    gateways.insert(sim.name(), Arc::new(sim.clone()));
    gateways.insert(stripe.name(), Arc::new(stripe));
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
