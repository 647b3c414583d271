//! The AMQP sink: every event published to RabbitMQ's durable topic exchange (`till.events`),
//! routing key = its type, persistent, `message_id` = its id, the body as `GET /v1/events`
//! shows it, with publisher confirms.
//!
//! An event counts as delivered only once the broker confirmed it: a batch is published,
//! then its confirms are awaited in order, and the sink reports the confirmed prefix so the
//! relay moves its cursor past those alone. A nack, a lost connection or a confirm that does
//! not come leaves the rest for the next pass (published again: consumers dedupe by
//! `message_id`). A broken connection is dropped and made anew on the next pass; the relay's
//! backoff paces the tries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

use crate::config::redact;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::notify::Event;

/// Longest a connection (TCP, TLS, AMQP handshake, exchange declaration) may take: a broker
/// that is away should fail the pass fast so the relay backs off, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest the broker may take to confirm one batch (RabbitMQ confirms a persistent message
/// once it is written to disk; seconds at most when healthy). Past it the connection is
/// treated as lost.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivery mode 2: the broker writes the message to disk, so it outlives a restart.
const PERSISTENT: u8 = 2;

/// Where events are published, and what the last contact with the broker found.
pub struct Broker {
    /// `amqp://…` or `amqps://…`, with credentials: never logged as it is (see `redact`).
    url: String,
    exchange: String,
    /// "ok", or what went wrong at the last connection (for `/readyz`).
    health: RwLock<String>,
    /// Whether the last probe reached the broker, so the log says so at start and when it
    /// comes back, not every minute.
    reached: AtomicBool,
}

impl Broker {
    /// Checks the settings (`TILL_AMQP_URL`, `TILL_AMQP_EXCHANGE`) without connecting: a
    /// mistake there is a configuration error at start, not a broker that is away.
    pub fn new(url: String, exchange: String) -> anyhow::Result<Broker> {
        if let Err(problem) = url.parse::<lapin::uri::AMQPUri>() {
            let problem = problem.replace(&url, &redact(&url));
            anyhow::bail!(
                "TILL_AMQP_URL {} is not an amqp:// or amqps:// URL: {problem}",
                redact(&url)
            );
        }
        // "" is the default exchange, and `amq.` names are the broker's own: neither can be
        // declared as a topic exchange.
        anyhow::ensure!(
            !exchange.is_empty() && !exchange.starts_with("amq."),
            "TILL_AMQP_EXCHANGE {exchange:?} must be a name of Till's own (not empty, not amq.…)"
        );
        Ok(Broker {
            url,
            exchange,
            health: RwLock::new("not yet reached".into()),
            reached: AtomicBool::new(false),
        })
    }

    /// The broker's URL without its password.
    pub fn address(&self) -> String {
        redact(&self.url)
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// "ok", or what went wrong at the last connection.
    pub fn health(&self) -> String {
        self.health
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_health(&self, health: String) {
        *self.health.write().unwrap_or_else(|e| e.into_inner()) = health;
    }

    /// Connects, declares the exchange and turns on publisher confirms.
    async fn connect(&self) -> Result<Link, String> {
        let connecting = async {
            let conn = Connection::connect(&self.url, ConnectionProperties::default()).await?;
            let channel = conn.create_channel().await?;
            channel
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>(Link { conn, channel })
        };
        let outcome = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(link)) => Ok(link),
            Ok(Err(err)) => Err(format!("unreachable: {err}")),
            Err(_) => Err(format!(
                "unreachable: no answer in {}s",
                CONNECT_TIMEOUT.as_secs()
            )),
        };
        self.set_health(match &outcome {
            Ok(_) => "ok".into(),
            Err(problem) => problem.clone(),
        });
        outcome
    }
}

/// One open connection and its confirming channel.
struct Link {
    conn: Connection,
    channel: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.conn.status().connected() && self.channel.status().connected()
    }

    /// Closes it, best effort (it may be broken already).
    async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.conn.close(200, "till relay reconnects".into()),
        )
        .await;
    }
}

/// Connects once (exchange declared) and reports whether the broker could be reached: what
/// `till serve` says at start, and what `/readyz` shows after. A broker that is away is a
/// warning, not a failure: events wait in the database until it is back.
pub async fn probe(broker: &Broker) {
    match broker.connect().await {
        Ok(link) => {
            if !broker.reached.swap(true, Ordering::Relaxed) {
                tracing::info!(broker = %broker.address(), exchange = broker.exchange(), "AMQP broker reachable");
            }
            link.close().await;
        }
        Err(problem) => {
            broker.reached.store(false, Ordering::Relaxed);
            tracing::warn!(broker = %broker.address(), problem, "AMQP broker not reachable: events wait in the database until it is back");
        }
    }
}

/// The AMQP sink's own state: the broker, and the connection kept across passes.
pub struct Amqp {
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    link: Option<Link>,
}

impl Amqp {
    pub fn new(broker: Arc<Broker>, metrics: Arc<Metrics>) -> Amqp {
        Amqp {
            broker,
            metrics,
            link: None,
        }
    }

    /// Closes the connection, if one is open.
    pub async fn close(self) {
        if let Some(link) = self.link {
            link.close().await;
        }
    }

    /// Publishes `events` and returns how many, from the first, the broker confirmed.
    pub async fn deliver(&mut self, events: &[Event]) -> Result<usize> {
        let link = match self.link.take() {
            Some(link) if link.usable() => link,
            stale => {
                if let Some(link) = stale {
                    link.close().await;
                }
                self.broker.connect().await.map_err(|problem| {
                    tracing::warn!(broker = %self.broker.address(), problem, "AMQP broker not reachable");
                    Error::Internal(anyhow::anyhow!("AMQP broker: {problem}"))
                })?
            }
        };
        let (confirmed, problem) = self.publish(&link, events).await;
        match problem {
            None => self.link = Some(link),
            Some(problem) => {
                // Whatever went wrong, the next pass starts on a fresh connection.
                link.close().await;
                self.broker.set_health(problem.clone());
                tracing::warn!(broker = %self.broker.address(), confirmed, of = events.len(), problem, "AMQP publish stopped short");
                if confirmed == 0 {
                    return Err(Error::Internal(anyhow::anyhow!("AMQP publish: {problem}")));
                }
            }
        }
        Ok(confirmed)
    }

    /// Publishes every event, then awaits the confirms in order: the count confirmed before
    /// the first that was not, and why that one was not.
    async fn publish(&self, link: &Link, events: &[Event]) -> (usize, Option<String>) {
        let mut pending = Vec::with_capacity(events.len());
        let mut problem = None;
        for event in events {
            let properties = BasicProperties::default()
                .with_delivery_mode(PERSISTENT)
                .with_message_id(event.id.as_str().into())
                .with_content_type("application/json".into());
            let published = link
                .channel
                .basic_publish(
                    self.broker.exchange.as_str().into(),
                    event.kind.as_str().into(),
                    BasicPublishOptions::default(),
                    event.to_json().as_bytes(),
                    properties,
                )
                .await;
            match published {
                Ok(confirm) => pending.push(confirm),
                Err(err) => {
                    problem = Some(format!("publish failed: {err}"));
                    break;
                }
            }
        }
        // One deadline for the whole batch, so a broker that stops answering is given up on.
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        let mut confirmed = 0;
        for confirm in pending {
            let Ok(answer) = tokio::time::timeout_at(deadline, confirm).await else {
                let waited = CONFIRM_TIMEOUT.as_secs();
                return (confirmed, Some(format!("no confirm in {waited}s")));
            };
            match answer {
                Ok(Confirmation::Ack(_)) => {
                    Metrics::inc(&self.metrics.amqp_confirmed);
                    confirmed += 1;
                }
                Ok(Confirmation::Nack(_)) => {
                    Metrics::inc(&self.metrics.amqp_nacked);
                    return (confirmed, Some("the broker refused an event (nack)".into()));
                }
                Ok(Confirmation::NotRequested) => {
                    return (confirmed, Some("publisher confirms are off".into()));
                }
                Err(err) => return (confirmed, Some(format!("no confirm: {err}"))),
            }
        }
        (confirmed, problem)
    }
}
