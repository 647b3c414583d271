//! A simulated payment gateway: Till's default gateway, so `till serve` works offline, and
//! `till gateway-sim`, the same gateway as a server of its own.
//!
//! It plays a remote gateway and is reached only over HTTP: its own protocol (`/sim/till`),
//! a Stripe subset (`/sim/stripe`) and a Razorpay subset (`/sim/razorpay`). It keeps its own
//! records (the `sim_*` tables, created by its own migrations, `migrate`), answers card
//! payments synchronously, completes UPI, wallet and 3-D Secure payments later, and reports
//! every final outcome as a signed webhook POSTed over real HTTP to the shop
//! (`/v1/webhooks/{sim,stripe,razorpay}`), retried until it answers 2xx. Its outcomes follow
//! the table in docs/api.md. It knows nothing of Till's code: Till embeds its router and
//! reaches it through adapters that know a base URL and keys, as for a real gateway.

mod database;
mod delivery;
pub mod faults;
mod migrate;
mod own_api;
mod razorpay;
mod razorpay_refunds;
pub mod server;
mod stripe;
mod stripe_api;
mod stripe_objects;
mod stripe_refunds;
mod support;
mod wire;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sqlx::AnyPool;

pub use database::{connect, take_over_records};
use faults::{CallFault, Faults};
pub use faults::{FaultCounts, FaultSpec};
pub use migrate::migrate;
use support::{new_id, valid_vpa, Method};
pub use support::{random_token, Clock};

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
pub const SIGNATURE_HEADER: &str = "till-sim-signature";

/// Due webhooks sent per delivery pass; the rest wait for the next tick.
const DELIVERY_BATCH: i64 = 50;

/// Delivery gives up after this many failed tries (~1 h with the backoff below); Till's
/// recovery worker asks the gateway directly long before that.
const DELIVERY_ATTEMPTS_MAX: i64 = 20;

/// Backoff between delivery tries: full jitter over `min(cap, base * 2^n)`.
const DELIVERY_BACKOFF_BASE_MS: i64 = 200;
const DELIVERY_BACKOFF_CAP_MS: i64 = 300_000;

/// Time allowed for Till to answer one webhook POST.
const DELIVERY_TIMEOUT_MS: u64 = 10_000;

/// What the simulator will do with a source, decided from the docs/api.md table.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    SucceedNow,
    FailNow(&'static str),
    ThreeDSecure,
    Later {
        succeed: bool,
        failure_code: &'static str,
    },
}

fn plan(method: Method, source: &str) -> Option<Plan> {
    match (method, source) {
        (Method::Card, "pm_card_visa" | "pm_card_mastercard") => Some(Plan::SucceedNow),
        (Method::Card, "pm_card_chargeDeclined") => Some(Plan::FailNow("card_declined")),
        (Method::Card, "pm_card_chargeDeclinedInsufficientFunds") => {
            Some(Plan::FailNow("insufficient_funds"))
        }
        (Method::Card, "pm_card_authenticationRequired") => Some(Plan::ThreeDSecure),
        (Method::Upi, "failure@razorpay") => Some(Plan::Later {
            succeed: false,
            failure_code: "payment_failed",
        }),
        (Method::Upi, vpa) if valid_vpa(vpa) => Some(Plan::Later {
            succeed: true,
            failure_code: "",
        }),
        (Method::Wallet, "paytm" | "phonepe" | "amazonpay") => Some(Plan::Later {
            succeed: true,
            failure_code: "",
        }),
        (Method::Wallet, "wallet_declined") => Some(Plan::Later {
            succeed: false,
            failure_code: "wallet_declined",
        }),
        _ => None,
    }
}

#[derive(Default)]
struct Urls {
    till: String,
    own: String,
}

/// The simulator: a handle on its records, settings and fault knobs (cheap to clone).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

/// The simulator's settings: its delay and the secrets it shares with Till's adapters.
pub struct SimConfig {
    pub delay_ms: i64,
    /// Signs the simulator's own-protocol webhooks (`/v1/webhooks/sim`).
    pub webhook_secret: String,
    /// The bearer key its own protocol's HTTP API (`/sim/till`) accepts.
    pub api_key: String,
    /// The API key the Stripe endpoints accept.
    pub stripe_secret_key: String,
    /// Signs the Stripe-protocol webhooks (`/v1/webhooks/stripe`).
    pub stripe_webhook_secret: String,
    /// The key id and secret the Razorpay endpoints accept (HTTP Basic).
    pub razorpay_key_id: String,
    pub razorpay_key_secret: String,
    /// Signs the Razorpay-protocol webhooks (`/v1/webhooks/razorpay`).
    pub razorpay_webhook_secret: String,
    /// Fault knobs (`TILL_SIM_FAULTS`); the default injects none.
    pub faults: FaultSpec,
}

struct Inner {
    pool: AnyPool,
    clock: Clock,
    delay_ms: i64,
    secret: String,
    api_key: String,
    stripe_secret_key: String,
    stripe_webhook_secret: String,
    razorpay_key_id: String,
    razorpay_key_secret: String,
    razorpay_webhook_secret: String,
    faults: Faults,
    /// Where the simulator's webhooks go (Till) and where its own endpoints and pages are
    /// reached: the same address when it runs inside Till, two when it runs alone
    /// (`till gateway-sim`). Known only once the servers have bound their ports.
    urls: RwLock<Urls>,
    http: reqwest::Client,
}

impl Simulator {
    /// A simulator keeping its records in `pool`, whose schema `migrate` has brought up.
    pub fn new(pool: AnyPool, clock: Clock, cfg: SimConfig) -> Simulator {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(DELIVERY_TIMEOUT_MS))
            .build()
            .expect("an HTTP client with a timeout builds");
        Simulator {
            inner: Arc::new(Inner {
                pool,
                clock,
                delay_ms: cfg.delay_ms,
                secret: cfg.webhook_secret,
                api_key: cfg.api_key,
                stripe_secret_key: cfg.stripe_secret_key,
                stripe_webhook_secret: cfg.stripe_webhook_secret,
                razorpay_key_id: cfg.razorpay_key_id,
                razorpay_key_secret: cfg.razorpay_key_secret,
                razorpay_webhook_secret: cfg.razorpay_webhook_secret,
                faults: Faults::new(cfg.faults),
                urls: RwLock::new(Urls::default()),
                http,
            }),
        }
    }

    /// Closes its database connections (the shop's own, where it keeps its records there).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Inside Till: webhooks go to `url`, and the simulator is reached there too.
    pub fn set_till_url(&self, url: String) {
        self.set_urls(url.clone(), url);
    }

    /// Alone: webhooks go to `till_url`; the simulator's endpoints are at `self_url`.
    pub fn set_urls(&self, till_url: String, self_url: String) {
        *self.inner.urls.write().unwrap_or_else(|e| e.into_inner()) = Urls {
            till: till_url,
            own: self_url,
        };
    }

    /// Delivers due webhooks every `tick` until the process ends (`till gateway-sim`).
    pub fn spawn_delivery(&self, tick: Duration) -> tokio::task::JoinHandle<()> {
        let sim = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = sim.deliver_due().await {
                    tracing::warn!(error = %err, "simulator delivery pass failed");
                }
                tokio::time::sleep(tick).await;
            }
        })
    }

    /// The faults injected so far.
    pub fn fault_counts(&self) -> &FaultCounts {
        &self.inner.faults.counts
    }

    fn till_url(&self) -> String {
        self.inner
            .urls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .till
            .clone()
    }

    fn own_url(&self) -> String {
        self.inner
            .urls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .own
            .clone()
    }

    /// The simulator's customer-facing pages (the 3-D Secure challenge).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/sim/3ds/{id}", get(three_d_secure))
            .nest("/sim/stripe", self.with_faults(stripe::router()))
            .nest("/sim/till", self.with_faults(own_api::router(self)))
            .nest(
                "/sim/razorpay",
                Router::new()
                    .route("/upi/{id}/approve", get(razorpay::approve_intent))
                    .merge(self.with_faults(razorpay::router())),
            )
            .with_state(self.clone())
    }

    /// The API fault knobs around a gateway's endpoints.
    fn with_faults(&self, api: Router<Simulator>) -> Router<Simulator> {
        api.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            inject_faults,
        ))
    }
}

/// Applies the API fault knobs to a Stripe or Razorpay call.
async fn inject_faults(
    State(sim): State<Simulator>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let latency_ms = sim.inner.faults.spec.latency_ms;
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let fail = |status: axum::http::StatusCode| {
        (status, axum::Json(json!({"error": {"type": "api_error", "code": "SERVER_ERROR", "message": "simulated fault", "description": "simulated fault"}}))).into_response()
    };
    match sim.inner.faults.call() {
        CallFault::None => next.run(req).await,
        CallFault::Error => fail(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        CallFault::Outage => fail(axum::http::StatusCode::SERVICE_UNAVAILABLE),
        CallFault::LostAnswer => {
            let _ = next.run(req).await;
            fail(axum::http::StatusCode::GATEWAY_TIMEOUT)
        }
    }
}

/// Schedules the event that reports `outcome`, held back further when a fault knob says so.
/// Returns a storage error as is; callers on the gateway side map it.
async fn queue_event(
    sim: &Simulator,
    conn: &mut sqlx::AnyConnection,
    payment_id: &str,
    outcome: &str,
    failure_code: Option<&str>,
    deliver_at: i64,
) -> Result<(), sqlx::Error> {
    let deliver_at = deliver_at + sim.inner.faults.event_delay_ms(outcome, sim.inner.delay_ms);
    sqlx::query("INSERT INTO sim_events (id, payment_id, outcome, failure_code, deliver_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(new_id("evt"))
        .bind(payment_id)
        .bind(outcome)
        .bind(failure_code)
        .bind(deliver_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The 3-D Secure challenge page: visiting it authenticates the payment, which the
/// simulator then reports by webhook.
/// Where the 3-D Secure page sends the customer back: a path on the shop's own site.
#[derive(serde::Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

/// A path of the site itself (`/shop/orders/ord_…`): never another site, nothing to escape.
fn same_site_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
}

async fn three_d_secure(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Query(back): Query<ReturnTo>,
) -> Html<String> {
    let now = sim.inner.clock.now_ms();
    let result = async {
        let mut tx = sim.inner.pool.begin().await?;
        // An authorization-only payment (Stripe, manual capture) now waits for its capture.
        let moved: Option<String> = sqlx::query_scalar(
            "UPDATE sim_payments SET updated_at = $1,
               status = CASE WHEN capture_manual = 1 THEN 'requires_capture' ELSE 'succeeded' END
             WHERE id = $2 AND status = 'requires_action' RETURNING status",
        )
        .bind(now)
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(status) = &moved {
            queue_event(&sim, &mut tx, &id, status, None, now).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(moved.is_some())
    }
    .await;
    let message = match result {
        Ok(true) => "Payment authenticated. You can return to the shop.",
        Ok(false) => "This payment needs no authentication.",
        Err(_) => "The simulator could not record the authentication; try again.",
    };
    let back = match back.return_to.filter(|p| same_site_path(p)) {
        Some(path) => format!("<p><a href=\"{path}\">Return to the shop</a></p>"),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><meta name=\"viewport\" content=\"width=device-width\"><title>Till simulator</title><p>{message}</p>{back}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_api_table() {
        assert_eq!(plan(Method::Card, "pm_card_visa"), Some(Plan::SucceedNow));
        assert_eq!(
            plan(Method::Card, "pm_card_chargeDeclined"),
            Some(Plan::FailNow("card_declined"))
        );
        assert_eq!(
            plan(Method::Card, "pm_card_authenticationRequired"),
            Some(Plan::ThreeDSecure)
        );
        assert!(matches!(
            plan(Method::Upi, "failure@razorpay"),
            Some(Plan::Later { succeed: false, .. })
        ));
        assert!(matches!(
            plan(Method::Upi, "success@razorpay"),
            Some(Plan::Later { succeed: true, .. })
        ));
        assert!(matches!(
            plan(Method::Wallet, "wallet_declined"),
            Some(Plan::Later { succeed: false, .. })
        ));
        assert_eq!(plan(Method::Wallet, "bitcoin"), None);
        assert_eq!(plan(Method::Upi, "not-a-vpa"), None);
        assert_eq!(plan(Method::Card, "success@razorpay"), None);
    }
}
