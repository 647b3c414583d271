//! Prometheus counters, kept as atomics and rendered as text at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub orders_created: AtomicU64,
    pub orders_out_of_stock: AtomicU64,
    pub orders_confirmed: AtomicU64,
    pub orders_cancelled: AtomicU64,
    pub orders_expired: AtomicU64,
    pub late_payments_relocked: AtomicU64,
    pub late_payments_refunded: AtomicU64,
    pub payments_started: AtomicU64,
    pub gateway_errors: AtomicU64,
    pub gateway_latency_ms_sum: AtomicU64,
    pub gateway_calls: AtomicU64,
    pub webhooks_received: AtomicU64,
    pub webhooks_rejected: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    /// Signed webhooks that named a payment of another gateway, another gateway id, or
    /// another amount or currency than the attempt's: not applied.
    pub webhooks_mismatched: AtomicU64,
    /// Gateway answers that the payment an order was paid with is canceled or failed: not
    /// applied, recorded on the payment for reconciliation and people.
    pub payments_contradicted: AtomicU64,
    pub refunds_succeeded: AtomicU64,
    pub events_delivered: AtomicU64,
    /// Events RabbitMQ confirmed (ack) and refused (nack); a nacked one is published again.
    pub amqp_confirmed: AtomicU64,
    pub amqp_nacked: AtomicU64,
    pub http_requests: AtomicU64,
    pub http_5xx: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters, then each sink's lag: `(sink, events waiting, age of the oldest in s)`.
    pub fn render(&self, sink_lags: &[(String, i64, i64)]) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, labels: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP till_{name} {help}\n# TYPE till_{name} counter");
            for (label, value) in labels {
                let _ = writeln!(out, "till_{name}{label} {value}");
            }
        };
        counter(
            "checkouts_total",
            "Checkouts by outcome.",
            &[
                ("{outcome=\"created\"}", get(&self.orders_created)),
                ("{outcome=\"out_of_stock\"}", get(&self.orders_out_of_stock)),
                ("{outcome=\"confirmed\"}", get(&self.orders_confirmed)),
                ("{outcome=\"cancelled\"}", get(&self.orders_cancelled)),
                ("{outcome=\"expired\"}", get(&self.orders_expired)),
            ],
        );
        counter(
            "late_payments_total",
            "Payments that succeeded after their order ended, by what Till did.",
            &[
                ("{action=\"relocked\"}", get(&self.late_payments_relocked)),
                ("{action=\"refunded\"}", get(&self.late_payments_refunded)),
            ],
        );
        counter(
            "payments_started_total",
            "Payment attempts started.",
            &[("", get(&self.payments_started))],
        );
        counter(
            "gateway_calls_total",
            "Calls to payment gateways.",
            &[("", get(&self.gateway_calls))],
        );
        counter(
            "gateway_errors_total",
            "Gateway calls with no usable answer.",
            &[("", get(&self.gateway_errors))],
        );
        counter(
            "gateway_latency_ms_total",
            "Summed gateway call latency.",
            &[("", get(&self.gateway_latency_ms_sum))],
        );
        counter(
            "webhooks_total",
            "Gateway webhooks by result.",
            &[
                ("{result=\"applied\"}", get(&self.webhooks_received)),
                ("{result=\"rejected\"}", get(&self.webhooks_rejected)),
                ("{result=\"duplicate\"}", get(&self.webhooks_duplicate)),
                ("{result=\"mismatched\"}", get(&self.webhooks_mismatched)),
            ],
        );
        counter(
            "payments_contradicted_total",
            "Gateway answers that a confirmed order's money is gone (not applied; flagged).",
            &[("", get(&self.payments_contradicted))],
        );
        counter(
            "refunds_succeeded_total",
            "Refunds the gateway accepted.",
            &[("", get(&self.refunds_succeeded))],
        );
        counter(
            "events_delivered_total",
            "Events the sinks took, all sinks together.",
            &[("", get(&self.events_delivered))],
        );
        counter(
            "amqp_publishes_total",
            "Events published to RabbitMQ, by the broker's confirm.",
            &[
                ("{outcome=\"confirmed\"}", get(&self.amqp_confirmed)),
                ("{outcome=\"nacked\"}", get(&self.amqp_nacked)),
            ],
        );
        counter(
            "http_requests_total",
            "HTTP requests served.",
            &[("", get(&self.http_requests))],
        );
        counter(
            "http_5xx_total",
            "HTTP requests answered 5xx.",
            &[("", get(&self.http_5xx))],
        );
        let _ = writeln!(out, "# HELP till_sink_lag_events Events written that a sink has not yet taken.\n# TYPE till_sink_lag_events gauge");
        for (sink, waiting, _) in sink_lags {
            let _ = writeln!(out, "till_sink_lag_events{{sink=\"{sink}\"}} {waiting}");
        }
        let _ = writeln!(out, "# HELP till_sink_lag_seconds Age of the oldest event a sink has not yet taken.\n# TYPE till_sink_lag_seconds gauge");
        for (sink, _, age) in sink_lags {
            let _ = writeln!(out, "till_sink_lag_seconds{{sink=\"{sink}\"}} {age}");
        }
        out
    }

    /// Merchant webhook deliveries waiting to be sent and given up (`failed`).
    pub fn render_webhook_deliveries(pending: i64, failed: i64) -> String {
        format!(
            "# HELP till_webhook_deliveries Merchant webhook deliveries by state.\n\
             # TYPE till_webhook_deliveries gauge\n\
             till_webhook_deliveries{{state=\"pending\"}} {pending}\n\
             till_webhook_deliveries{{state=\"failed\"}} {failed}\n"
        )
    }
}

/// SQLite's group commits: groups begun, the write transactions that ran in them, and the
/// time the writer was held for them.
pub fn render_write_groups(groups: Option<(u64, u64)>, busy_micros: Option<u64>) -> String {
    let (Some((groups, members)), Some(busy_micros)) = (groups, busy_micros) else {
        return String::new();
    };
    let busy = busy_micros / 1_000_000;
    let busy_fraction = busy_micros % 1_000_000;
    format!(
        "# HELP till_sqlite_write_groups_total Groups of write transactions committed together.\n\
         # TYPE till_sqlite_write_groups_total counter\n\
         till_sqlite_write_groups_total {groups}\n\
         # HELP till_sqlite_grouped_writes_total Write transactions that ran in a group.\n\
         # TYPE till_sqlite_grouped_writes_total counter\n\
         till_sqlite_grouped_writes_total {members}\n\
         # HELP till_sqlite_writer_busy_seconds_total Time the one writer was held for the groups, their commits included.\n\
         # TYPE till_sqlite_writer_busy_seconds_total counter\n\
         till_sqlite_writer_busy_seconds_total {busy}.{busy_fraction:06}\n"
    )
}

/// Customer email by state (`pending`, `sent`, `failed`): `till_mail_messages{state=…}`.
pub fn render_mail(counts: &[(&str, i64)]) -> String {
    let mut out = String::from(
        "# HELP till_mail_messages Customer emails queued, by state.\n# TYPE till_mail_messages gauge\n",
    );
    for (state, n) in counts {
        let _ = writeln!(out, "till_mail_messages{{state=\"{state}\"}} {n}");
    }
    out
}
