//! Events on RabbitMQ (the real broker on this machine, guest/guest at 127.0.0.1:5672): each
//! event published once to the topic exchange, routing key = type, persistent, `message_id`
//! = event id, body as `GET /v1/events` shows it; and a broker stopped and started while
//! events stream loses none of them.
//!
//! Each test publishes to an exchange of its own (`TILL_AMQP_EXCHANGE`), so tests running at
//! once never see one another's events. The restart test takes the broker down for everyone,
//! so it holds `BROKER` for writing while the others hold it for reading.
//!
//! Over 400 lines: the test consumer and every test that shares the broker (and so the
//! `BROKER` lock that keeps the restart away from the others) live in one module.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use reqwest::Method;
use serde_json::{json, Value};
use till::Workers;

use crate::both;
use crate::events::all_events;
use crate::helpers::{test_config, Backend, TestApp, TestDb};
use crate::tls::{call, serve_with, tls_proxy, Pki};

both!(
    every_event_is_published_once_as_listed,
    bad_broker_settings_stop_the_start,
    a_dead_broker_holds_up_no_other_sink
);

/// The broker the tests use; it must be running (the tests fail otherwise, never skip).
fn broker_url() -> String {
    std::env::var("TILL_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Held for reading by every test that uses the broker, for writing by the one restarting it.
static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// One message as the broker handed it over.
struct Received {
    routing_key: String,
    message_id: Option<String>,
    delivery_mode: Option<u8>,
    content_type: Option<String>,
    body: Value,
}

async fn connect() -> (Connection, Channel) {
    let url = broker_url();
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ is required for these tests ({url}): {e}"));
    let channel = conn.create_channel().await.expect("channel");
    (conn, channel)
}

/// A test's own exchange and a queue bound to it with `#`: everything Till publishes there.
struct Consumer {
    conn: Connection,
    channel: Channel,
    exchange: String,
    queue: String,
}

impl Consumer {
    /// Declares a fresh exchange (as Till declares it) and binds a queue to it: exclusive, or
    /// durable when it must outlive a broker restart.
    async fn bind(durable: bool) -> Consumer {
        let (conn, channel) = connect().await;
        let exchange = format!("till.test.{}", till::ids::random_token(10));
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange declared");
        let options = QueueDeclareOptions {
            durable,
            exclusive: !durable,
            ..QueueDeclareOptions::default()
        };
        let name = format!("{exchange}.all");
        let queue = channel
            .queue_declare(name.as_str().into(), options, FieldTable::default())
            .await
            .expect("queue declared");
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue bound");
        Consumer {
            conn,
            channel,
            exchange,
            queue: name,
        }
    }

    /// A new connection, after the broker restarted (the queue is durable).
    async fn reconnect(&mut self) {
        (self.conn, self.channel) = connect().await;
    }

    /// Takes messages until `want` arrived (or `within` passed), then whatever else is there.
    async fn take(&self, want: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let message = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get");
            match message {
                Some(m) => {
                    let d = m.delivery;
                    got.push(Received {
                        routing_key: d.routing_key.to_string(),
                        message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                        delivery_mode: *d.properties.delivery_mode(),
                        content_type: d.properties.content_type().as_ref().map(|s| s.to_string()),
                        body: serde_json::from_slice(&d.data).expect("body is JSON"),
                    });
                }
                None if got.len() >= want || Instant::now() > deadline => return got,
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Deletes the test's queue and exchange.
    async fn remove(self) {
        self.channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("queue deleted");
        self.channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .expect("exchange deleted");
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// Till publishing to `exchange` on the test broker.
async fn till_on(b: Backend, workers: Workers, exchange: &str) -> TestApp {
    let exchange = exchange.to_string();
    let app = TestApp::spawn_with(b, workers, move |c| {
        c.amqp_url = Some(broker_url());
        c.amqp_exchange = exchange;
        c.max_pending_per_customer = 0;
    })
    .await;
    // The start's probe of the broker reports "ok" when it connects: waited for here, so it
    // cannot land after a test's own publish and overwrite what that publish reported.
    for _ in 0..500 {
        let (_, ready) = app.call(Method::GET, "/readyz", None).await;
        if ready["broker"] == "ok" {
            return app;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "the broker at {} was never reported reachable",
        broker_url()
    );
}

/// The AMQP sink's events still waiting, as `/metrics` shows them.
async fn amqp_lag(app: &TestApp) -> i64 {
    till::relay::lags(app.state())
        .await
        .expect("lags")
        .into_iter()
        .find(|(sink, _, _)| sink == "amqp")
        .map_or(0, |(_, waiting, _)| waiting)
}

async fn every_event_is_published_once_as_listed(b: Backend) {
    let _shared = BROKER.read().await;
    let consumer = Consumer::bind(false).await;
    let app = till_on(b, Workers::Manual, &consumer.exchange).await;
    app.stocked("TEE-1", 49_900, 10).await;
    let paid = app.new_order("TEE-1", 2).await;
    assert_eq!(app.pay(&paid, "card", "pm_card_visa").await.0, 201);
    let refund = json!({"amount": 10_000});
    let path = format!("/v1/orders/{paid}/refunds");
    let (status, body) = app.call(Method::POST, &path, Some(refund)).await;
    assert_eq!(status, 201, "{body}");
    app.run_workers().await;
    assert_eq!(amqp_lag(&app).await, 0, "the relay took every event");

    let listed = all_events(&app, "", 100).await;
    assert!(listed.len() >= 4, "{listed:?}");
    let got = consumer.take(listed.len(), Duration::from_secs(10)).await;
    assert_eq!(got.len(), listed.len(), "each event arrives exactly once");
    for (event, message) in listed.iter().zip(&got) {
        assert_eq!(message.routing_key, event["type"].as_str().unwrap());
        assert_eq!(message.message_id.as_deref(), event["id"].as_str());
        assert_eq!(message.delivery_mode, Some(2), "persistent");
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(&message.body, event, "the body is the event as listed");
    }
    // Delivered is delivered: another pass publishes nothing again.
    app.run_workers().await;
    assert!(consumer.take(0, Duration::ZERO).await.is_empty());
    let metrics = app.metrics_text().await;
    let confirmed = format!(
        "till_amqp_publishes_total{{outcome=\"confirmed\"}} {}",
        listed.len()
    );
    assert!(metrics.contains(&confirmed), "{metrics}");
    assert!(metrics.contains("till_sink_lag_events{sink=\"amqp\"} 0"));
    let (_, ready) = app.call(Method::GET, "/readyz", None).await;
    assert_eq!(ready["broker"], "ok", "{ready}");
    consumer.remove().await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_fails_the_pass_and_loses_nothing() {
    let _shared = BROKER.read().await;
    let consumer = Consumer::bind(false).await;
    // Nothing listens on port 1: every pass fails, and the cursor stays.
    let mut app = TestApp::spawn_with(Backend::Sqlite, Workers::Manual, |c| {
        c.amqp_url = Some("amqp://guest:secret-pw@127.0.0.1:1/%2f".into());
    })
    .await;
    app.stocked("TEE-1", 49_900, 10).await;
    app.new_order("TEE-1", 1).await;
    assert!(till::relay::run_once(app.state()).await.is_err());
    assert_eq!(amqp_lag(&app).await, 1);
    let (_, ready) = app.call(Method::GET, "/readyz", None).await;
    let health = ready["broker"].as_str().unwrap();
    assert!(health.starts_with("unreachable"), "{ready}");
    assert!(!health.contains("secret-pw"), "the password never shows");
    // The broker is back (here: the right address), and the event goes out.
    let exchange = consumer.exchange.clone();
    app.restart(Workers::Manual, move |c| {
        c.amqp_url = Some(broker_url());
        c.amqp_exchange = exchange;
    })
    .await;
    app.run_workers().await;
    assert_eq!(amqp_lag(&app).await, 0);
    let got = consumer.take(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].routing_key, "order.created");
    consumer.remove().await;
    app.finish().await;
}

/// The sinks run on their own: with the broker unreachable the running relay still writes the
/// customer's email and takes every event into the other sinks, while the broker's wait.
async fn a_dead_broker_holds_up_no_other_sink(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Run, |c| {
        c.amqp_url = Some("amqp://guest:guest@127.0.0.1:1/%2f".into());
    })
    .await;
    app.stocked("TEE-1", 49_900, 10).await;
    let order = app.new_order("TEE-1", 1).await;
    assert_eq!(app.pay(&order, "card", "pm_card_visa").await.0, 201);
    let waiting = |lags: &[(String, i64, i64)], sink: &str| {
        lags.iter()
            .find(|(name, _, _)| name == sink)
            .map(|(_, n, _)| *n)
    };
    let started = Instant::now();
    loop {
        let lags = till::relay::lags(app.state()).await.unwrap();
        let others_done = ["log", "webhooks", "mail"]
            .iter()
            .all(|sink| waiting(&lags, sink) == Some(0));
        let mailed = std::fs::read_dir(&app.db.mail_dir).map_or(0, |d| d.count());
        if others_done && mailed == 1 {
            // order.created, payment.succeeded, order.confirmed, invoice.issued
            assert_eq!(waiting(&lags, "amqp"), Some(4), "{lags:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the other sinks were held up: {lags:?}, {mailed} mails"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.finish().await;
}

async fn bad_broker_settings_stop_the_start(b: Backend) {
    let db = TestDb::new(b).await;
    let cases = [
        ("http://guest:hunter2@127.0.0.1:5672/", "till.events"),
        ("amqp://guest:hunter2@127.0.0.1:notaport/%2f", "till.events"),
        ("amqp://guest:hunter2@127.0.0.1:5672/%2f", ""),
        ("amqp://guest:hunter2@127.0.0.1:5672/%2f", "amq.topic"),
    ];
    for (url, exchange) in cases {
        let mut cfg = test_config(&db);
        cfg.amqp_url = Some(url.into());
        cfg.amqp_exchange = exchange.into();
        let Err(err) = till::start(&cfg, till::Clock::default(), Workers::Manual).await else {
            panic!("{url} {exchange:?} was accepted");
        };
        let err = format!("{err:#}");
        assert!(err.contains("TILL_AMQP_"), "{err}");
        assert!(!err.contains("hunter2"), "the password never shows: {err}");
    }
    db.drop_db().await;
}

/// Runs `rabbitmqctl` with `args`, failing the test if it fails.
fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (RabbitMQ is required for these tests)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the broker's application again if the test ends early, so no other test (or
/// session) finds it stopped.
struct Restarts;

impl Drop for Restarts {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("rabbitmqctl").arg("start_app").status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_while_events_stream_loses_none() {
    let _alone = BROKER.write().await;
    let mut consumer = Consumer::bind(true).await;
    let app = till_on(Backend::Sqlite, Workers::Run, &consumer.exchange).await;
    app.stocked("TEE-1", 49_900, 10_000).await;

    let app = std::sync::Arc::new(app);
    let streaming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (app, streaming) = (app.clone(), streaming.clone());
        tokio::spawn(async move {
            while streaming.load(std::sync::atomic::Ordering::Relaxed) {
                app.new_order("TEE-1", 1).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let guard = Restarts;
    tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_back = amqp_lag(&app).await;
    assert!(held_back > 0, "events wait while the broker is down");
    tokio::task::spawn_blocking(|| {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    })
    .await
    .unwrap();
    let started = Instant::now();
    drop(guard);
    tokio::time::sleep(Duration::from_secs(1)).await;
    streaming.store(false, std::sync::atomic::Ordering::Relaxed);
    producer.await.expect("the producer ran");
    let mut caught_up = None;
    for _ in 0..1200 {
        if amqp_lag(&app).await == 0 {
            caught_up = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = caught_up.expect("the AMQP sink caught up within a minute");

    let listed = all_events(&app, "", 100).await;
    consumer.reconnect().await;
    let got = consumer.take(listed.len(), Duration::from_secs(10)).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for message in &got {
        *seen.entry(message.message_id.clone().unwrap()).or_default() += 1;
    }
    let lost: Vec<&str> = listed
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .filter(|id| !seen.contains_key(*id))
        .collect();
    let duplicates = got.len() - seen.len();
    eprintln!(
        "amqp restart: {} events, {} messages, {} duplicates, {} lost; {} waiting while down; caught up {} ms after start_app",
        listed.len(),
        got.len(),
        duplicates,
        lost.len(),
        held_back,
        caught_up.as_millis()
    );
    assert!(lost.is_empty(), "lost across the restart: {lost:?}");
    assert_eq!(seen.len(), listed.len(), "only Till's events arrived");
    consumer.remove().await;
    let app = std::sync::Arc::into_inner(app).expect("the producer let go");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_event_is_not_delivered_and_goes_again() {
    let _shared = BROKER.read().await;
    let consumer = Consumer::bind(false).await;
    // A queue that holds nothing and refuses instead of dropping: the broker nacks every
    // event routed to it.
    let mut refusing = FieldTable::default();
    refusing.insert("x-max-length".into(), AMQPValue::LongInt(0));
    refusing.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let full = format!("{}.full", consumer.exchange);
    let options = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    consumer
        .channel
        .queue_declare(full.as_str().into(), options, refusing)
        .await
        .expect("refusing queue declared");
    let bind = QueueBindOptions::default();
    let (queue, exchange) = (full.as_str().into(), consumer.exchange.as_str().into());
    consumer
        .channel
        .queue_bind(queue, exchange, "#".into(), bind, FieldTable::default())
        .await
        .expect("refusing queue bound");
    let app = till_on(Backend::Sqlite, Workers::Manual, &consumer.exchange).await;
    app.stocked("TEE-1", 49_900, 10).await;
    let order = app.new_order("TEE-1", 1).await;

    assert!(till::relay::run_once(app.state()).await.is_err());
    assert_eq!(amqp_lag(&app).await, 1, "a nacked event is not delivered");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("till_amqp_publishes_total{outcome=\"nacked\"} 1"),
        "{metrics}"
    );
    let (_, ready) = app.call(Method::GET, "/readyz", None).await;
    assert!(
        ready["broker"].as_str().unwrap().contains("nack"),
        "{ready}"
    );

    // Once the broker takes it, it is delivered (again, to the queue that had it: consumers
    // dedupe by message_id).
    let queue = full.as_str().into();
    consumer
        .channel
        .queue_delete(queue, QueueDeleteOptions::default())
        .await
        .expect("refusing queue deleted");
    app.run_workers().await;
    assert_eq!(amqp_lag(&app).await, 0);
    let got = consumer.take(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "published twice: nacked, then confirmed");
    let listed = all_events(&app, "", 100).await;
    for message in &got {
        assert_eq!(message.message_id.as_deref(), listed[0]["id"].as_str());
        assert_eq!(message.body["data"]["id"], order.as_str());
    }
    consumer.remove().await;
    app.finish().await;
}

/// `/readyz`'s word on the broker once the first probe answered.
async fn broker_health(http: &reqwest::Client, till: &str) -> String {
    for _ in 0..200 {
        let ready = call(http, Method::GET, format!("{till}/readyz"), None).await;
        match ready["broker"].as_str() {
            Some("not yet reached") | None => {}
            Some(health) => return health.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the broker was never probed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_reaches_the_broker_over_tls_with_a_private_ca() {
    let _shared = BROKER.read().await;
    let consumer = Consumer::bind(false).await;
    let pki = Pki::new();
    let tls = tls_proxy(&pki, "127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqps://guest:guest@127.0.0.1:{}/%2f", tls.port());
    let env = [
        ("TILL_AMQP_URL", url.as_str()),
        ("TILL_AMQP_EXCHANGE", consumer.exchange.as_str()),
    ];
    let http = reqwest::Client::new();

    // Trusting the CA: `till serve` says the broker is reachable, and events go over TLS.
    let (_till, till, log) = serve_with(&pki.dir, &env, Some(&pki.ca())).await;
    assert_eq!(broker_health(&http, &till).await, "ok");
    let product = json!({"name": "Tee", "price": {"amount": 49900, "currency": "INR"}, "tax_code": "apparel"});
    call(
        &http,
        Method::PUT,
        format!("{till}/v1/products/TEE-1"),
        Some(product),
    )
    .await;
    let stock = json!({"on_hand": 5});
    let path = format!("{till}/v1/inventory/TEE-1/warehouses/blr-1");
    call(&http, Method::PUT, path, Some(stock)).await;
    let items = json!({"customer": {"id": "u_1"}, "items": [{"sku": "TEE-1", "qty": 1}]});
    let order = call(
        &http,
        Method::POST,
        format!("{till}/v1/orders"),
        Some(items),
    )
    .await;
    let got = consumer.take(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].routing_key, "order.created");
    assert_eq!(got[0].body["data"]["id"], order["id"]);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("AMQP broker reachable"), "{logged}");

    // Without it: the certificate is refused, and `till serve` warns but serves.
    let (_untrusting, till, log) = serve_with(&pki.dir, &env, None).await;
    let health = broker_health(&http, &till).await;
    assert!(health.starts_with("unreachable"), "{health}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("AMQP broker not reachable"), "{logged}");
    assert!(
        !logged.contains("guest:guest"),
        "the password is never logged"
    );
    consumer.remove().await;
}
