//! The books after a batch of races: what the gateways hold (their own records, read from
//! `till gateway-sim` over HTTP and from the embedded simulator through its handle) against what
//! Till says of each order, then Till's invariants and reconciliation. Every disagreement is
//! a violation, counted by kind and printed with the order it concerns.
//!
//! Over 400 lines: one check per way the books can disagree, each naming the order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;

use crate::gateway_sim::Ledger;
use crate::helpers::TestApp;

/// Longest wait for everything in flight to end; what is still open then is a violation.
const SETTLE_MAX: Duration = Duration::from_secs(90);
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// Violations printed per run in full; the counts are always complete.
const EXAMPLES_SHOWN_MAX: usize = 12;

/// One race: the order it played on and whether the customer's cancel was answered
/// `cancelled` (which makes the cancel final).
#[derive(Clone, Debug)]
pub struct Race {
    pub order_id: String,
    pub cancelled_by_customer: bool,
}

impl Race {
    pub fn new(order_id: String) -> Race {
        Race {
            order_id,
            cancelled_by_customer: false,
        }
    }
}

/// One gateway record: a payment as the gateway itself holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Money {
    pub gateway: &'static str,
    pub id: String,
    /// Till's payment id the gateway was given (metadata, notes or idempotency key).
    pub key: Option<String>,
    pub status: String,
    pub amount: i64,
    pub refunded: i64,
    pub currency: String,
}

impl Money {
    /// The gateway holds this money: authorized and not voided, or captured and not all
    /// given back.
    pub fn held(&self) -> bool {
        match (self.gateway, self.status.as_str()) {
            ("stripe", "requires_capture") | ("razorpay", "authorized") => true,
            ("stripe", "succeeded") | ("razorpay", "captured") | ("sim", "succeeded") => {
                self.refunded < self.amount
            }
            _ => false,
        }
    }

    /// Only authorized at Razorpay, which has no void: it lapses unless captured.
    pub fn lapses(&self) -> bool {
        self.gateway == "razorpay" && self.status == "authorized"
    }
}

/// Every gateway's records: the Stripe, Razorpay and own-protocol books of `ledger` (a
/// simulator process), and the own protocol's books of the simulator Till embeds.
pub async fn books(app: &TestApp, ledger: Option<&Ledger>) -> Vec<Money> {
    let mut all = Vec::new();
    if let Some(sim) = ledger {
        for pi in sim.stripe_intents().await {
            all.push(Money {
                gateway: "stripe",
                id: text(&pi["id"]),
                key: pi["metadata"]["till_payment"].as_str().map(str::to_string),
                status: text(&pi["status"]),
                amount: pi["amount"].as_i64().unwrap_or(0),
                refunded: pi["latest_charge"]["amount_refunded"].as_i64().unwrap_or(0),
                currency: text(&pi["currency"]).to_uppercase(),
            });
        }
        for p in sim.razorpay_payments().await {
            all.push(Money {
                gateway: "razorpay",
                id: text(&p["id"]),
                key: p["notes"]["till_payment"].as_str().map(str::to_string),
                status: text(&p["status"]),
                amount: p["amount"].as_i64().unwrap_or(0),
                refunded: p["amount_refunded"].as_i64().unwrap_or(0),
                currency: text(&p["currency"]).to_uppercase(),
            });
        }
    }
    if let Some(sim) = ledger {
        all.extend(sim.own_payments().await.iter().map(own_money));
    }
    if let Some(sim) = &app.state().sim {
        let embedded = sim
            .own_payments(0)
            .await
            .expect("read the embedded simulator's records");
        all.extend(embedded.iter().map(own_money));
    }
    all
}

/// A payment of the simulator's own protocol, as its API and `own_payments` show it.
fn own_money(p: &Value) -> Money {
    Money {
        gateway: "sim",
        id: text(&p["id"]),
        key: p["key"].as_str().map(str::to_string),
        status: text(&p["status"]),
        amount: p["amount"].as_i64().unwrap_or(0),
        refunded: p["refunded"].as_i64().unwrap_or(0),
        currency: text(&p["currency"]),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// What one run found: the races, their outcomes, and the violations by kind.
#[derive(Debug, Default)]
pub struct Figures {
    pub title: String,
    pub races: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub violations: BTreeMap<String, usize>,
    pub examples: Vec<String>,
    pub seconds: f64,
}

impl Figures {
    pub fn new(title: String) -> Figures {
        Figures {
            title,
            ..Figures::default()
        }
    }

    pub fn count(&mut self, outcome: impl Into<String>) {
        *self.outcomes.entry(outcome.into()).or_default() += 1;
    }

    /// Another audit's findings, each kind and outcome under `prefix`.
    pub fn absorb(&mut self, prefix: &str, other: Figures) {
        for (kind, n) in other.violations {
            *self
                .violations
                .entry(format!("{prefix}{kind}"))
                .or_default() += n;
        }
        for (outcome, n) in other.outcomes {
            *self
                .outcomes
                .entry(format!("{prefix}{outcome}"))
                .or_default() += n;
        }
        self.examples.extend(other.examples);
    }

    pub fn violation(&mut self, kind: &str, detail: String) {
        *self.violations.entry(kind.to_string()).or_default() += 1;
        if self.examples.len() < EXAMPLES_SHOWN_MAX {
            self.examples.push(format!("{kind}: {detail}"));
        }
    }

    pub fn render(&self) -> String {
        let list = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let took = if self.seconds > 0.0 {
            format!(" in {:.1}s", self.seconds)
        } else {
            String::new()
        };
        let mut out = format!(
            "races [{}]: {} races{took}; outcomes: {}; violations: {}",
            self.title,
            self.races,
            list(&self.outcomes),
            list(&self.violations)
        );
        for example in &self.examples {
            out.push_str(&format!("\n    {example}"));
        }
        out
    }
}

/// The runs of one test; printed as they finish, asserted clean at the end so every run's
/// figures are seen even when the first one fails.
#[derive(Default)]
pub struct Report {
    runs: Vec<Figures>,
}

impl Report {
    pub fn add(&mut self, figures: Figures) {
        println!("{}", figures.render());
        self.runs.push(figures);
    }

    pub fn assert_clean(self) {
        let dirty: Vec<String> = self
            .runs
            .iter()
            .filter(|f| !f.violations.is_empty())
            .map(Figures::render)
            .collect();
        assert!(dirty.is_empty(), "money went astray:\n{}", dirty.join("\n"));
    }
}

/// Waits (bounded) until nothing is open in Till and neither Till's nor the gateways'
/// records have moved for `quiet`, then compares them order by order, runs the invariant
/// check and reconciliation, and returns the figures.
pub async fn settle_and_audit(
    app: &TestApp,
    ledger: Option<&Ledger>,
    races: &[Race],
    quiet: Duration,
    title: String,
    started: Instant,
) -> Figures {
    let money = settle(app, ledger, quiet).await;
    let mut figures = Figures::new(title);
    figures.races = races.len();
    let mut by_key: HashMap<&str, Vec<&Money>> = HashMap::new();
    for m in &money {
        by_key
            .entry(m.key.as_deref().unwrap_or(""))
            .or_default()
            .push(m);
    }
    let mut known_payments = std::collections::HashSet::new();
    for race in races {
        let order = app.order(&race.order_id).await;
        let status = text(&order["status"]);
        figures.count(status.as_str());
        for p in order["payments"].as_array().into_iter().flatten() {
            known_payments.insert(text(&p["id"]));
        }
        check_order(app, race, &order, &by_key, &mut figures).await;
    }
    for m in money.iter().filter(|m| m.held()) {
        if !m.key.as_deref().is_some_and(|k| known_payments.contains(k)) {
            figures.violation(
                "money_held_for_no_payment_of_these_orders",
                format!("{m:?}"),
            );
        }
    }
    let report = till::verify::check(&app.state().db)
        .await
        .expect("verify runs");
    for (name, count, rows) in &report.results {
        for row in rows.iter().take(*count) {
            figures.violation(&format!("verify: {name}"), row.clone());
        }
        // Rows past those shown still count.
        if *count > rows.len() {
            *figures
                .violations
                .entry(format!("verify: {name}"))
                .or_default() += count - rows.len();
        }
    }
    let findings = till::checkout::reconcile::reconcile(
        app.state(),
        till::checkout::reconcile::Scope::Everything,
    )
    .await
    .expect("reconcile runs");
    for line in &findings.lines {
        let kind = if line.starts_with("FLAGGED") {
            "reconcile_flagged"
        } else {
            "reconcile_repaired"
        };
        figures.violation(kind, line.clone());
    }
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

/// One order against the money the gateways hold for its payments.
async fn check_order(
    app: &TestApp,
    race: &Race,
    order: &Value,
    by_key: &HashMap<&str, Vec<&Money>>,
    figures: &mut Figures,
) {
    let id = race.order_id.as_str();
    let status = order["status"].as_str().unwrap_or_default();
    let total = order["total"].as_i64().unwrap_or(-1);
    let currency = text(&order["currency"]);
    let payments: Vec<(String, String)> = order["payments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (text(&p["id"]), text(&p["status"])))
        .collect();
    let held: Vec<(&str, &Money)> = payments
        .iter()
        .flat_map(|(pid, till_status)| {
            by_key
                .get(pid.as_str())
                .into_iter()
                .flatten()
                .filter(|m| m.held())
                .map(move |m| (till_status.as_str(), *m))
        })
        .collect();
    let brief = || {
        format!(
            "order {id} {status} total {total}; Till payments {payments:?}; gateway holds {:?}",
            held.iter().map(|(_, m)| m).collect::<Vec<_>>()
        )
    };
    if race.cancelled_by_customer && status != "cancelled" {
        figures.violation("customer_cancel_not_final", brief());
    }
    match status {
        "confirmed" | "partially_refunded" | "refunded" => {
            let paid = paid_by(app, id).await;
            let paid_by = paid.payment.clone();
            if paid.relocked {
                figures.count("re-locked");
                // Only captured money for a payment in flight at expiry re-opens an order;
                // only the simulator's own protocol captures as it authorizes.
                if paid.ended_by_customer {
                    figures.violation(
                        "relocked_after_the_customer_cancelled",
                        format!("{paid:?}; {}", brief()),
                    );
                } else if paid.gateway.as_deref() != Some("sim") || !paid.started_before_expiry {
                    figures.violation(
                        "relocked_without_captured_money_in_flight_at_expiry",
                        format!("{paid:?}; {}", brief()),
                    );
                }
            }
            let paid_by_status = payments
                .iter()
                .find(|(pid, _)| Some(pid) == paid_by.as_ref())
                .map(|(_, s)| s.as_str());
            if matches!(paid_by_status, None | Some("canceled" | "failed")) {
                figures.violation(
                    "paid_by_payment_canceled_or_failed_in_till",
                    format!("paid_by {paid_by:?} is {paid_by_status:?}; {}", brief()),
                );
            }
            match held.as_slice() {
                [] => figures.violation("confirmed_without_money", brief()),
                [(_, m)] => {
                    if m.amount != total || m.currency != currency {
                        figures.violation("confirmed_for_another_amount", brief());
                    }
                    if m.key != paid_by {
                        figures.violation("money_held_is_not_paid_by", brief());
                    }
                }
                _ => figures.violation("confirmed_with_two_payments_held", brief()),
            }
        }
        "cancelled" | "expired" => {
            for (till_status, m) in &held {
                // An uncaptured Razorpay authorization Till gave up lapses on its own.
                if !(m.lapses() && *till_status == "canceled") {
                    figures.violation("ended_order_with_money_held", brief());
                }
            }
        }
        _ => figures.violation("never_settled", brief()),
    }
}

/// What Till recorded about how an order was paid.
#[derive(Debug)]
struct PaidBy {
    payment: Option<String>,
    gateway: Option<String>,
    started_before_expiry: bool,
    /// The order's stock was released once and locked again: it ended, then a late payment
    /// confirmed it.
    relocked: bool,
    /// It was ended by the customer's cancel (its `order.cancelled` event says so), whatever
    /// the customer was answered.
    ended_by_customer: bool,
}

async fn paid_by(app: &TestApp, order_id: &str) -> PaidBy {
    let row = sqlx::query(
        "SELECT o.paid_by, p.gateway,
           CAST(CASE WHEN p.created_at < o.expires_at THEN 1 ELSE 0 END AS BIGINT) AS in_time,
           (SELECT COUNT(*) FROM locks l WHERE l.order_id = o.id AND l.state = 'released') AS released,
           (SELECT COUNT(*) FROM events e WHERE e.type = 'order.cancelled'
              AND e.data LIKE '{\"id\":\"' || o.id || '\"%'
              AND e.data LIKE '%\"cancel_reason\":\"customer\"%') AS by_customer
         FROM orders o LEFT JOIN payments p ON p.id = o.paid_by WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_one(&app.state().db.pool)
    .await
    .expect("read paid_by");
    PaidBy {
        payment: row.get("paid_by"),
        gateway: row.get("gateway"),
        started_before_expiry: row.get::<i64, _>("in_time") == 1,
        relocked: row.get::<i64, _>("released") > 0,
        ended_by_customer: row.get::<i64, _>("by_customer") > 0,
    }
}

/// Waits until nothing is open in Till and the books have been still for `quiet`; returns
/// the gateways' records as they stand then (or when the bound ran out).
async fn settle(app: &TestApp, ledger: Option<&Ledger>, quiet: Duration) -> Vec<Money> {
    let started = Instant::now();
    let mut last: Option<(String, Vec<Money>)> = None;
    let mut still_since = Instant::now();
    loop {
        let till = till_snapshot(app).await;
        let money = books(app, ledger).await;
        let open = till.0 > 0;
        let same = last
            .as_ref()
            .is_some_and(|(t, m)| *t == till.1 && *m == money);
        if !same {
            still_since = Instant::now();
        }
        if (!open && same && still_since.elapsed() >= quiet) || started.elapsed() > SETTLE_MAX {
            return money;
        }
        last = Some((till.1, money));
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// How many rows are still open in Till, and a digest of every order's and payment's state.
async fn till_snapshot(app: &TestApp) -> (i64, String) {
    let pool = &app.state().db.pool;
    let open: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM orders WHERE status = 'pending')
              + (SELECT COUNT(*) FROM payments WHERE status IN ('processing', 'requires_action', 'authorized'))
              + (SELECT COUNT(*) FROM refunds WHERE status = 'pending')",
    )
    .fetch_one(pool)
    .await
    .expect("count open rows");
    let owed = match &app.state().sim {
        Some(sim) => sim.due_webhooks().await.expect("count due webhooks"),
        None => 0,
    };
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT id || ':' || status FROM orders UNION ALL SELECT id || ':' || status FROM payments
         UNION ALL SELECT id || ':' || status FROM refunds ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("read states");
    (open + owed, states.join(","))
}
