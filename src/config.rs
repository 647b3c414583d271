//! Settings: every one a `--flag` with a `TILL_*` environment variable and a default that
//! needs no configuration.

use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to serve on.
    #[arg(long, env = "TILL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// What this instance does: `all` (the API and the workers), `api` (the API only) or
    /// `worker` (the workers and the relay; it serves `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "TILL_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// On SIGTERM: how long `/readyz` answers 503 `draining` while requests are still
    /// served, so a load balancer stops sending before the listener closes.
    #[arg(long, env = "TILL_DRAIN_NOTICE_MS", default_value_t = 0)]
    pub drain_notice_ms: u64,
    /// On SIGTERM, after the notice: the longest requests in flight and the workers' current
    /// pass are waited for before the process exits anyway.
    #[arg(long, env = "TILL_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
    /// `sqlite://PATH` or `postgres://…`.
    #[arg(long, env = "TILL_DATABASE_URL", default_value = "sqlite://till.db")]
    pub database_url: String,
    /// The merchant/admin secret; generated on first start and printed once when unset.
    #[arg(long, env = "TILL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// How long stock stays locked for a pending order.
    #[arg(long, env = "TILL_HOLD_TTL_SECS", default_value_t = 900)]
    pub hold_ttl_secs: i64,
    /// Stock an empty catalog with a few example products on start (for trying the shop at
    /// `/shop`); a catalog with any product is left alone.
    #[arg(long, env = "TILL_DEMO_CATALOG", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub demo_catalog: bool,
    /// Store currency (ISO 4217).
    #[arg(long, env = "TILL_CURRENCY", default_value = "INR")]
    pub currency: String,
    /// Simulator: delay before an asynchronous outcome's webhook.
    #[arg(long, env = "TILL_SIM_DELAY_MS", default_value_t = 500)]
    pub sim_delay_ms: i64,
    /// Secret the simulator signs its webhooks with; random per process when unset.
    #[arg(long, env = "TILL_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub sim_webhook_secret: Option<String>,
    /// Simulator fault knobs, e.g. `latency_ms=50,error=0.05,timeout=0.1,webhook_drop=0.05,
    /// webhook_dup=0.2,webhook_reorder=0.1,late_auth=0.02,outage=10-15,seed=7`.
    #[arg(long, env = "TILL_SIM_FAULTS")]
    pub sim_faults: Option<String>,
    /// Requests a second each credential may make (bursts of twice that); 0: no limit.
    #[arg(long, env = "TILL_RATE_LIMIT_PER_SEC", default_value_t = 0)]
    pub rate_limit_per_sec: u64,
    /// Pending orders one `customer.id` (on `/inventory/lock`, its `user_id`) may hold at
    /// once; past it 429 `too_many_pending_orders`, so one buyer cannot lock a flash sale's
    /// stock for the whole hold. 0: no limit.
    #[arg(long, env = "TILL_MAX_PENDING_PER_CUSTOMER", default_value_t = 5)]
    pub max_pending_per_customer: u32,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this token>`; unset, it is open.
    #[arg(long, env = "TILL_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// PostgreSQL pool size (SQLite always uses one writer connection).
    #[arg(long, env = "TILL_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// How often the workers (expiry, recovery, refunds, simulator) and the relay's sinks look
    /// for due work.
    #[arg(long, env = "TILL_WORKER_TICK_MS", default_value_t = 250)]
    pub worker_tick_ms: u64,
    /// The gateway that takes card payments: `sim` (the built-in simulator's own protocol),
    /// `stripe` or `razorpay` (the adapters; against the simulator's Stripe or Razorpay
    /// endpoints unless their `TILL_GATEWAY_*_URL` points at the real gateway).
    /// Unset: `sim`, unless a real gateway is configured (a `TILL_GATEWAY_*_URL`); then a
    /// method left unset is turned off rather than quietly taking simulated money.
    #[arg(long, env = "TILL_CARD_GATEWAY")]
    pub card_gateway: Option<String>,
    /// The gateway that takes UPI payments: `sim` or `razorpay` (unset: as for cards).
    #[arg(long, env = "TILL_UPI_GATEWAY")]
    pub upi_gateway: Option<String>,
    /// The gateway that takes wallet payments: `sim` or `razorpay` (unset: as for cards).
    #[arg(long, env = "TILL_WALLET_GATEWAY")]
    pub wallet_gateway: Option<String>,
    /// Razorpay's API base URL (`https://api.razorpay.com`); unset: the embedded simulator
    /// (`/sim/razorpay` at Till's own address).
    #[arg(long, env = "TILL_GATEWAY_RAZORPAY_URL")]
    pub razorpay_url: Option<String>,
    /// Razorpay key id; required with `TILL_GATEWAY_RAZORPAY_URL`.
    #[arg(long, env = "TILL_RAZORPAY_KEY_ID")]
    pub razorpay_key_id: Option<String>,
    /// Razorpay key secret; required with `TILL_GATEWAY_RAZORPAY_URL`.
    #[arg(long, env = "TILL_RAZORPAY_KEY_SECRET", hide_env_values = true)]
    pub razorpay_key_secret: Option<String>,
    /// Razorpay webhook secret(s), comma-separated while rotating; required with
    /// `TILL_GATEWAY_RAZORPAY_URL`.
    #[arg(long, env = "TILL_RAZORPAY_WEBHOOK_SECRET", hide_env_values = true)]
    pub razorpay_webhook_secret: Option<String>,
    /// The simulator's own protocol at a gateway elsewhere (`http://HOST:PORT/sim/till` of a
    /// `till gateway-sim`); unset: the embedded simulator. Needs `TILL_SIM_API_KEY` and
    /// `TILL_SIM_WEBHOOK_SECRET` (the same on both sides).
    #[arg(long, env = "TILL_GATEWAY_SIM_URL")]
    pub sim_url: Option<String>,
    /// The key the simulator's own-protocol API accepts (random when unset).
    #[arg(long, env = "TILL_SIM_API_KEY", hide_env_values = true)]
    pub sim_api_key: Option<String>,
    /// Stripe's API base URL (`https://api.stripe.com`); unset: the embedded simulator
    /// (`/sim/stripe` at Till's own address).
    #[arg(long, env = "TILL_GATEWAY_STRIPE_URL")]
    pub stripe_url: Option<String>,
    /// Stripe secret key; required with `TILL_GATEWAY_STRIPE_URL`.
    #[arg(long, env = "TILL_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// Stripe webhook signing secret(s), comma-separated while rotating; required with
    /// `TILL_GATEWAY_STRIPE_URL`.
    #[arg(long, env = "TILL_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// Where Stripe sends the customer back after a 3-D Secure challenge (the shop's order
    /// page); unset: Till's own address (`http://{listen}/`). Empty: none, so Stripe leaves
    /// the challenge to Stripe.js and the payment's `next_action` is `use_stripe_sdk`.
    #[arg(long, env = "TILL_STRIPE_RETURN_URL")]
    pub stripe_return_url: Option<String>,
    /// Stripe publishable key (`pk_…`): with real Stripe taking cards, the shop's card form
    /// uses Stripe.js with it; unset, the form offers Stripe's test payment methods by name.
    #[arg(long, env = "TILL_STRIPE_PUBLISHABLE_KEY")]
    pub stripe_publishable_key: Option<String>,
    /// How often the workers reconcile the gateways' books with Till's (0: never; run
    /// `till reconcile` by hand instead).
    #[arg(long, env = "TILL_RECONCILE_EVERY_SECS", default_value_t = 300)]
    pub reconcile_every_secs: u64,
    /// A payment still `processing` this long after its last change is asked about again.
    /// Above a normal gateway call by far; a call that retries longer (up to 4 tries of 10 s)
    /// may meet recovery asking too, which is safe with idempotency keys (Stripe) and costs at
    /// most a second payment attempt that reconciliation refunds (Razorpay). Raise it to 60
    /// to rule that out at the price of slower recovery.
    #[arg(long, env = "TILL_RECOVERY_AFTER_SECS", default_value_t = 15)]
    pub recovery_after_secs: i64,
    /// Longest a client may take to send a request's headers, and then its body; a slower
    /// connection is closed (headers) or answered 408 (body).
    #[arg(long, env = "TILL_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub read_timeout_ms: u64,
    /// Connections served at once; past it new ones wait in the listen queue until one ends.
    #[arg(long, env = "TILL_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// RabbitMQ to publish every event to (`amqp://user:pass@host:5672/%2f`, or `amqps://`
    /// for TLS); unset: no AMQP sink.
    #[arg(long, env = "TILL_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// The durable topic exchange events are published to, routing key = event type.
    #[arg(long, env = "TILL_AMQP_EXCHANGE", default_value = "till.events")]
    pub amqp_exchange: String,
    /// How long merchant webhooks are retried after an event was queued before a delivery is
    /// given up (`failed`).
    #[arg(long, env = "TILL_WEBHOOK_RETRY_HOURS", default_value_t = 72)]
    pub webhook_retry_hours: i64,
    /// Merchant webhooks: the first retry waits up to twice this, doubling per attempt
    /// (full jitter), up to `TILL_WEBHOOK_RETRY_CAP_MS`.
    #[arg(long, env = "TILL_WEBHOOK_RETRY_BASE_MS", default_value_t = 1_000)]
    pub webhook_retry_base_ms: i64,
    /// Merchant webhooks: the longest wait between two attempts.
    #[arg(long, env = "TILL_WEBHOOK_RETRY_CAP_MS", default_value_t = 3_600_000)]
    pub webhook_retry_cap_ms: i64,
    /// Merchant webhooks: an endpoint that has not answered in this long has failed the attempt.
    #[arg(long, env = "TILL_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// The SMTP server customer email goes through: `smtp://host:port` (plain),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://user:pass@host:465` (implicit
    /// TLS). Unset: each message is written as an `.eml` file to `TILL_MAIL_DIR` instead.
    #[arg(long, env = "TILL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of customer email (`orders@shop.example` or `Shop <orders@shop.example>`).
    #[arg(long, env = "TILL_MAIL_FROM", default_value = "orders@localhost")]
    pub mail_from: String,
    /// Where customer email is written as `<event id>.eml` files when no SMTP server is set.
    #[arg(long, env = "TILL_MAIL_DIR", default_value = "./mail")]
    pub mail_dir: String,
    /// The wait before a message the server refused for now (4xx, no connection) is tried
    /// again; it doubles with each try, up to an hour.
    #[arg(long, env = "TILL_MAIL_RETRY_BASE_MS", default_value_t = 30_000)]
    pub mail_retry_base_ms: u64,
}

/// Which parts of Till one instance runs (`TILL_ROLE`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    All,
    Api,
    Worker,
}

impl Role {
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    pub fn runs_workers(self) -> bool {
        self != Role::Api
    }
}

impl Config {
    /// The defaults, as `till serve` with no flags and no environment would see them (tests
    /// start from this and change what they need).
    pub fn defaults() -> Config {
        Config {
            listen: "127.0.0.1:8080".into(),
            role: Role::All,
            drain_notice_ms: 0,
            drain_secs: 30,
            database_url: "sqlite://till.db".into(),
            api_key: None,
            hold_ttl_secs: 900,
            demo_catalog: false,
            currency: "INR".into(),
            sim_delay_ms: 500,
            sim_webhook_secret: None,
            sim_faults: None,
            rate_limit_per_sec: 0,
            max_pending_per_customer: 5,
            metrics_token: None,
            db_max_connections: 16,
            worker_tick_ms: 250,
            recovery_after_secs: 15,
            reconcile_every_secs: 300,
            read_timeout_ms: 10_000,
            max_connections: 1024,
            amqp_url: None,
            amqp_exchange: "till.events".into(),
            webhook_retry_hours: 72,
            webhook_retry_base_ms: 1_000,
            webhook_retry_cap_ms: 3_600_000,
            webhook_timeout_ms: 10_000,
            smtp_url: None,
            mail_from: "orders@localhost".into(),
            mail_dir: "./mail".into(),
            mail_retry_base_ms: 30_000,
            card_gateway: None,
            upi_gateway: None,
            wallet_gateway: None,
            razorpay_url: None,
            razorpay_key_id: None,
            razorpay_key_secret: None,
            razorpay_webhook_secret: None,
            sim_url: None,
            sim_api_key: None,
            stripe_url: None,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_return_url: None,
            stripe_publishable_key: None,
        }
    }
}

/// A URL without its password (`scheme://***@host/…`), for the log.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
