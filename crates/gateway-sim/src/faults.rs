//! Fault knobs for the simulator's Stripe and Razorpay endpoints and its webhooks, drawn
//! from one seeded generator so a run can be repeated:
//! `TILL_SIM_FAULTS=latency_ms=50,error=0.05,timeout=0.1,webhook_drop=0.05,webhook_dup=0.2,webhook_reorder=0.1,late_auth=0.02,outage=10-15,seed=7`.
//!
//! - `latency_ms`: added to every API answer.
//! - `error`: share of API calls answered 500 before doing anything.
//! - `timeout`: share of API calls that take effect but whose answer is lost (504).
//! - `outage=A-B`: seconds A to B after start, every API call is answered 503.
//! - `webhook_drop` / `webhook_dup`: share of webhooks never sent / sent twice.
//! - `webhook_reorder`: share of webhooks held back so later ones overtake them.
//! - `late_auth`: share of asynchronous authorizations that land `late_ms` (default 5000)
//!   later than usual, typically after the order's hold expired.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSpec {
    pub latency_ms: u64,
    pub error: f64,
    pub timeout: f64,
    pub webhook_drop: f64,
    pub webhook_dup: f64,
    pub webhook_reorder: f64,
    pub late_auth: f64,
    pub late_ms: i64,
    pub outage_secs: Option<(u64, u64)>,
    pub seed: u64,
}

impl FaultSpec {
    pub fn parse(text: &str) -> Result<FaultSpec, String> {
        let mut spec = FaultSpec {
            late_ms: 5_000,
            ..FaultSpec::default()
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("fault {part:?} needs name=value"))?;
            let rate = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{name} must be a rate in 0..1"))
            };
            let int = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name} must be a whole number"))
            };
            match name {
                "latency_ms" => spec.latency_ms = int()?,
                "error" => spec.error = rate()?,
                "timeout" => spec.timeout = rate()?,
                "webhook_drop" => spec.webhook_drop = rate()?,
                "webhook_dup" => spec.webhook_dup = rate()?,
                "webhook_reorder" => spec.webhook_reorder = rate()?,
                "late_auth" => spec.late_auth = rate()?,
                "late_ms" => spec.late_ms = int()? as i64,
                "seed" => spec.seed = int()?,
                "outage" => {
                    let (a, b) = value
                        .split_once('-')
                        .ok_or("outage must be START-END seconds")?;
                    let (a, b) = (
                        a.parse().map_err(|_| "outage start")?,
                        b.parse().map_err(|_| "outage end")?,
                    );
                    spec.outage_secs = Some((a, b));
                }
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(spec)
    }
}

/// What happens to one API call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFault {
    None,
    /// Answer 500 without doing anything.
    Error,
    /// Answer 503: the gateway is down.
    Outage,
    /// Do it, then lose the answer (504).
    LostAnswer,
}

/// What happens to one webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFault {
    None,
    Drop,
    Duplicate,
}

/// Counts of the faults injected, for the chaos test's report.
#[derive(Default, Debug)]
pub struct FaultCounts {
    pub errors: AtomicU64,
    pub lost_answers: AtomicU64,
    pub outage_answers: AtomicU64,
    pub webhooks_dropped: AtomicU64,
    pub webhooks_duplicated: AtomicU64,
    pub webhooks_reordered: AtomicU64,
    pub late_auths: AtomicU64,
}

impl FaultCounts {
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} 5xx, {} lost answers, {} outage answers, {} webhooks dropped, {} duplicated, {} reordered, {} late authorizations",
            get(&self.errors),
            get(&self.lost_answers),
            get(&self.outage_answers),
            get(&self.webhooks_dropped),
            get(&self.webhooks_duplicated),
            get(&self.webhooks_reordered),
            get(&self.late_auths)
        )
    }
}

pub struct Faults {
    pub spec: FaultSpec,
    rng: Mutex<StdRng>,
    started: Instant,
    pub counts: FaultCounts,
}

impl Faults {
    pub fn new(spec: FaultSpec) -> Faults {
        let rng = Mutex::new(StdRng::seed_from_u64(spec.seed));
        Faults {
            spec,
            rng,
            started: Instant::now(),
            counts: FaultCounts::default(),
        }
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .gen_bool(rate)
    }

    pub fn call(&self) -> CallFault {
        if let Some((from, to)) = self.spec.outage_secs {
            let now = self.started.elapsed().as_secs();
            if (from..to).contains(&now) {
                self.counts.outage_answers.fetch_add(1, Ordering::Relaxed);
                return CallFault::Outage;
            }
        }
        if self.roll(self.spec.error) {
            self.counts.errors.fetch_add(1, Ordering::Relaxed);
            return CallFault::Error;
        }
        if self.roll(self.spec.timeout) {
            self.counts.lost_answers.fetch_add(1, Ordering::Relaxed);
            return CallFault::LostAnswer;
        }
        CallFault::None
    }

    pub fn webhook(&self) -> WebhookFault {
        if self.roll(self.spec.webhook_drop) {
            self.counts.webhooks_dropped.fetch_add(1, Ordering::Relaxed);
            return WebhookFault::Drop;
        }
        if self.roll(self.spec.webhook_dup) {
            self.counts
                .webhooks_duplicated
                .fetch_add(1, Ordering::Relaxed);
            return WebhookFault::Duplicate;
        }
        WebhookFault::None
    }

    /// Extra delay for a queued event: a reordering hold-back or a late authorization.
    pub fn event_delay_ms(&self, outcome: &str, base_delay_ms: i64) -> i64 {
        if matches!(outcome, "authorized" | "succeeded" | "requires_capture")
            && self.roll(self.spec.late_auth)
        {
            self.counts.late_auths.fetch_add(1, Ordering::Relaxed);
            return self.spec.late_ms;
        }
        if self.roll(self.spec.webhook_reorder) {
            self.counts
                .webhooks_reordered
                .fetch_add(1, Ordering::Relaxed);
            return base_delay_ms.max(50) * 2;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let spec = FaultSpec::parse("latency_ms=50,error=0.05,timeout=0.1,webhook_drop=0.05,webhook_dup=0.2,webhook_reorder=0.1,late_auth=0.02,outage=10-15,seed=7").unwrap();
        assert_eq!(
            (spec.latency_ms, spec.error, spec.timeout, spec.seed),
            (50, 0.05, 0.1, 7)
        );
        assert_eq!(spec.outage_secs, Some((10, 15)));
        assert!(FaultSpec::parse("error=2").is_err());
        assert!(FaultSpec::parse("bogus=1").is_err());
        assert_eq!(FaultSpec::parse("").unwrap().late_ms, 5_000);
    }

    #[test]
    fn same_seed_same_faults() {
        let spec = FaultSpec::parse("error=0.3,timeout=0.3,seed=42").unwrap();
        let (a, b) = (Faults::new(spec.clone()), Faults::new(spec));
        let draws_a: Vec<CallFault> = (0..100).map(|_| a.call()).collect();
        let draws_b: Vec<CallFault> = (0..100).map(|_| b.call()).collect();
        assert_eq!(draws_a, draws_b);
        assert!(draws_a.contains(&CallFault::Error) && draws_a.contains(&CallFault::LostAnswer));
    }
}
