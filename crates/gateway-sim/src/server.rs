//! `till gateway-sim`: the simulator as a server of its own, speaking the Stripe and Razorpay
//! subsets at `/sim/stripe` and `/sim/razorpay` (plus its 3-D Secure and UPI approval pages;
//! Stripe's also at the root, `/v1/...`, where SDKs without a base path reach it),
//! with its own database (`--database-url`, `TILL_SIM_DATABASE_URL`; only the simulator's
//! tables, by its own migrations), sending its webhooks to Till. Point Till at it with
//! `TILL_GATEWAY_STRIPE_URL=http://HOST:PORT/sim/stripe` and
//! `TILL_GATEWAY_RAZORPAY_URL=http://HOST:PORT/sim/razorpay` (and its own protocol with
//! `TILL_GATEWAY_SIM_URL=http://HOST:PORT/sim/till`) and the same keys on both sides.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::faults::FaultSpec;
use super::{SimConfig, Simulator};
use crate::support::{random_token, Clock};

/// How often the standalone simulator sends due webhooks.
const DELIVERY_TICK_MS: u64 = 50;

#[derive(Args, Clone, Debug)]
pub struct GatewaySimArgs {
    /// Address the simulator serves on.
    #[arg(long, env = "TILL_SIM_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: String,
    /// Till's base URL, where webhooks go (`/v1/webhooks/stripe`, `/v1/webhooks/razorpay`).
    #[arg(
        long,
        env = "TILL_SIM_TILL_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub till_url: String,
    /// The simulator's own records (`sqlite://PATH`, created if missing, or `postgres://…`);
    /// never Till's database: only the simulator's tables are migrated there.
    #[arg(
        long,
        env = "TILL_SIM_DATABASE_URL",
        default_value = "sqlite://till-gateway-sim.db"
    )]
    pub database_url: String,
    /// Delay before an asynchronous outcome (UPI, wallets).
    #[arg(long, env = "TILL_SIM_DELAY_MS", default_value_t = 500)]
    pub delay_ms: i64,
    /// Fault knobs, as `TILL_SIM_FAULTS` (see the README).
    #[arg(long, env = "TILL_SIM_FAULTS")]
    pub faults: Option<String>,
    /// The key its own protocol's API (`/sim/till`) accepts; Till's `TILL_SIM_API_KEY`.
    #[arg(long, env = "TILL_SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Signs its own protocol's webhooks; Till's `TILL_SIM_WEBHOOK_SECRET`.
    #[arg(long, env = "TILL_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    #[arg(long, env = "TILL_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: String,
    #[arg(long, env = "TILL_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: String,
    #[arg(long, env = "TILL_RAZORPAY_KEY_ID")]
    pub razorpay_key_id: String,
    #[arg(long, env = "TILL_RAZORPAY_KEY_SECRET", hide_env_values = true)]
    pub razorpay_key_secret: String,
    #[arg(long, env = "TILL_RAZORPAY_WEBHOOK_SECRET", hide_env_values = true)]
    pub razorpay_webhook_secret: String,
}

pub async fn run(args: GatewaySimArgs) -> anyhow::Result<()> {
    let pool = crate::database::connect(&args.database_url).await?;
    crate::migrate(&pool).await?;
    let faults = FaultSpec::parse(args.faults.as_deref().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("faults: {e}"))?;
    // Rotation lists (comma-separated) sign with their first secret.
    let first = |list: &str| {
        list.split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let sim = Simulator::new(
        pool,
        Clock::system(),
        SimConfig {
            delay_ms: args.delay_ms,
            webhook_secret: args.webhook_secret.unwrap_or_else(|| random_token(32)),
            api_key: args.api_key.unwrap_or_else(|| random_token(32)),
            stripe_secret_key: args.stripe_secret_key,
            stripe_webhook_secret: first(&args.stripe_webhook_secret),
            razorpay_key_id: args.razorpay_key_id,
            razorpay_key_secret: args.razorpay_key_secret,
            razorpay_webhook_secret: first(&args.razorpay_webhook_secret),
            faults,
        },
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    sim.set_urls(
        args.till_url.trim_end_matches('/').to_string(),
        format!("http://{addr}"),
    );
    let _delivery = sim.spawn_delivery(Duration::from_millis(DELIVERY_TICK_MS));
    tracing::info!(%addr, till = %args.till_url, "gateway simulator serving");
    println!("till gateway-sim listening on http://{addr}");
    // The Stripe API also at the root: the Node SDK takes a host and port but no path.
    let app = sim.router::<()>().merge(
        sim.with_faults(super::stripe::router())
            .with_state(sim.clone()),
    );
    axum::serve(listener, app).await?;
    Ok(())
}
