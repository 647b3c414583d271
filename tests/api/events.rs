//! `GET /v1/events`: every step of a checkout reported once, in commit order, with the
//! object as `GET` showed it then; paging with `after` never skips or repeats, even while
//! transactions commit out of the order they wrote in.

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;
use till::notify::store::{self, Position};
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, Outcomes, TestApp};

both!(
    each_step_is_reported_with_its_object,
    the_events_carry_exactly_what_get_showed,
    bad_queries_are_refused,
    concurrent_commits_page_without_skip_or_repeat,
    each_sink_reports_its_lag
);

/// Every event, paging `limit` at a time.
pub(crate) async fn all_events(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?limit={limit}{query}");
        if let Some(id) = &after {
            path += &format!("&after={id}");
        }
        let (status, page) = app.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap().clone();
        assert!(data.len() <= limit);
        after = data
            .last()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .or(after);
        let more = page["has_more"].as_bool().unwrap();
        seen.extend(data);
        if !more {
            return seen;
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn each_step_is_reported_with_its_object(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| c.hold_ttl_secs = 60).await;
    let Outcomes {
        paid,
        refund,
        declined,
        expired,
    } = app.one_of_each_outcome().await;
    app.run_workers().await;

    let events = all_events(&app, "", 100).await;
    assert_eq!(
        types(&events),
        [
            "order.created",
            "payment.succeeded",
            "order.confirmed",
            "invoice.issued",
            "refund.succeeded",
            "credit_note.issued",
            "order.created",
            "payment.failed",
            "order.cancelled",
            "order.created",
            "order.expired",
        ]
    );
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids repeat");
    assert!(ids.iter().all(|id| id.starts_with("evt_")));
    for e in &events {
        assert!(e["created_at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    // The object as it was at that moment, not as it is now.
    let created = &events[0]["data"];
    assert_eq!(
        (created["id"].as_str(), created["status"].as_str()),
        (Some(paid.as_str()), Some("pending"))
    );
    assert!(
        created.get("client_secret").is_none(),
        "an event never carries the secret"
    );
    let payment = &events[1]["data"];
    assert_eq!(
        (payment["object"].as_str(), payment["status"].as_str()),
        (Some("payment"), Some("succeeded"))
    );
    assert_eq!(payment["order_id"], paid.as_str());
    let confirmed = &events[2]["data"];
    assert_eq!(confirmed["status"], "confirmed");
    let number = confirmed["invoice_number"].as_str().unwrap();
    assert!(number.starts_with("INV/"), "{confirmed}");
    assert_eq!(app.order(&paid).await["invoice_number"], number);
    let invoice = &events[3]["data"];
    assert_eq!(invoice["number"], number, "the invoice issued with it");
    assert_eq!(invoice["total"], confirmed["total"]);
    let refunded = &events[4]["data"];
    assert_eq!(
        (refunded["object"].as_str(), refunded["amount"].as_i64()),
        (Some("refund"), Some(10_000))
    );
    assert_eq!(refunded["id"], refund["id"]);
    let note = &events[5]["data"];
    assert_eq!(
        (note["refund_id"].clone(), note["total"].as_i64()),
        (refund["id"].clone(), Some(10_000))
    );
    assert!(
        note["number"].as_str().unwrap().starts_with("CN/"),
        "{note}"
    );
    assert_eq!(events[7]["data"]["failure_code"], "card_declined");
    assert_eq!(events[8]["data"]["id"], declined.as_str());
    assert_eq!(events[8]["data"]["cancel_reason"], "payment_failed");
    assert_eq!(events[10]["data"]["id"], expired.as_str());
    assert_eq!(events[10]["data"]["status"], "expired");

    // Pages of one, or filtered by type, see the same events in the same order.
    assert_eq!(all_events(&app, "", 1).await, events);
    let created_only = all_events(&app, "&type=order.created", 2).await;
    assert_eq!(types(&created_only), ["order.created"; 3]);
    assert_eq!(created_only[2], events[9]);
    // `after` the last event: nothing more, and no more to come.
    let last = events.last().unwrap()["id"].as_str().unwrap();
    let (status, page) = app
        .call(Method::GET, &format!("/v1/events?after={last}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page, json!({"data": [], "has_more": false}));
    app.finish().await;
}

/// The order a create answers with and its `order.created` event are built from what was
/// written, and the confirmation's events gathered and written in one statement: each must
/// still be exactly what `GET` shows once nothing has changed since, field for field.
async fn the_events_carry_exactly_what_get_showed(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| c.hold_ttl_secs = 60).await;
    app.stocked("TEE-1", 49_900, 5).await;
    let (status, created) = app
        .call(
            Method::POST,
            "/v1/orders",
            Some(json!({
                "customer": {"id": "u_7", "email": "asha@example.com", "name": "Asha Rao", "phone": "+919800000001"},
                "ship_to": {"country": "IN", "region": "KA", "postal_code": "560001", "city": "Bengaluru", "line1": "1 Residency Rd"},
                "items": [{"sku": "TEE-1", "qty": 2}],
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let shown = app.order(&id).await;
    let mut answered = created.clone();
    answered.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(
        answered, shown,
        "the create's answer is the order as GET shows it"
    );

    let (status, paid) = app.pay(&id, "card", "pm_card_visa").await;
    assert_eq!(
        (status.as_u16(), paid["status"].as_str()),
        (201, Some("succeeded")),
        "{paid}"
    );
    let confirmed = app.order(&id).await;
    let payment = &confirmed["payments"][0];
    assert_eq!(payment["id"], paid["id"]);
    let events = all_events(&app, "", 100).await;
    assert_eq!(
        types(&events),
        [
            "order.created",
            "payment.succeeded",
            "order.confirmed",
            "invoice.issued"
        ]
    );
    assert_eq!(events[0]["data"], shown);
    assert_eq!(&events[1]["data"], payment);
    assert_eq!(events[2]["data"], confirmed);
    let (_, invoice) = app
        .call(Method::GET, &format!("/v1/orders/{id}/invoice"), None)
        .await;
    assert_eq!(events[3]["data"], invoice);
    app.finish().await;
}

async fn bad_queries_are_refused(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    let order = app.order_of("TEE-1", 1).await;
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=-1",
        "type=order.shipped",
        "after=evt_nosuchevent",
        "colour=red",
    ] {
        let got = app
            .call(Method::GET, &format!("/v1/events?{query}"), None)
            .await;
        assert_error(&got, 400, "invalid_request");
    }
    let anonymous = app
        .send(app.http.get(format!("{}/v1/events", app.url)))
        .await;
    assert_error(&anonymous, 401, "unauthorized");
    let secret = order["client_secret"].as_str().unwrap();
    let customer = app
        .send(
            app.http
                .get(format!("{}/v1/events", app.url))
                .bearer_auth(secret),
        )
        .await;
    assert_error(&customer, 401, "unauthorized");
    app.finish().await;
}

/// Orders created all at once while a reader pages along behind them: each `order.created`
/// is read exactly once.
async fn concurrent_commits_page_without_skip_or_repeat(b: Backend) {
    let n = 200;
    let app = TestApp::spawn_with(b, Workers::Manual, |c| c.max_pending_per_customer = 0).await;
    app.stocked("TEE-1", 500, n as i64).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (url, http, done) = (app.url.clone(), app.http.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = String::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page: Value = http
                    .get(format!("{url}/v1/events?limit=7{after}"))
                    .bearer_auth(crate::helpers::API_KEY)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let data = page["data"].as_array().unwrap();
                if let Some(last) = data.last() {
                    after = format!("&after={}", last["id"].as_str().unwrap());
                }
                seen.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_string()));
                if finished && !page["has_more"].as_bool().unwrap() {
                    return seen;
                }
            }
        })
    };
    let created =
        join_all((0..n).map(|_| app.create_order(json!([{"sku": "TEE-1", "qty": 1}])))).await;
    for (status, body) in &created {
        assert_eq!(status.as_u16(), 201, "{body}");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "the reader saw an event twice");
    assert_eq!(seen.len(), n, "the reader missed events");
    let orders: BTreeSet<&str> = created
        .iter()
        .map(|(_, o)| o["id"].as_str().unwrap())
        .collect();
    let all = all_events(&app, "", 1000).await;
    let reported: BTreeSet<&str> = all
        .iter()
        .map(|e| e["data"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, reported);
    app.finish().await;
}

async fn each_sink_reports_its_lag(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    till::relay::run_once(app.state()).await.unwrap();
    app.new_order("TEE-1", 1).await;
    app.new_order("TEE-1", 1).await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("till_sink_lag_events{sink=\"log\"} 2"),
        "{metrics}"
    );
    // Each sink takes both events.
    let sinks = till::relay::Sink::configured(app.state()).len();
    assert_eq!(till::relay::run_once(app.state()).await.unwrap(), 2 * sinks);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("till_sink_lag_events{sink=\"log\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("till_sink_lag_seconds{sink=\"log\"} 0"),
        "{metrics}"
    );
    app.finish().await;
}

/// PostgreSQL: a transaction that wrote its event first but commits last. A reader paging by
/// insertion order would read the second event, move past the first, and never see it; here
/// the first is numbered when it commits, after the second, and the reader's next page has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_event_committed_late_is_not_stepped_over() {
    let app = TestApp::spawn_with(Backend::Postgres, Workers::Manual, |_| {}).await;
    let db = &app.state().db;
    let mut first = db.pool.acquire().await.unwrap();
    let mut first_tx = first.begin().await.unwrap();
    store::insert(&mut first_tx, "evt_first", "order.created", "{}", 1)
        .await
        .unwrap();
    let mut second = db.pool.acquire().await.unwrap();
    let mut second_tx = second.begin().await.unwrap();
    store::insert(&mut second_tx, "evt_second", "order.created", "{}", 2)
        .await
        .unwrap();
    second_tx.commit().await.unwrap();

    let ids = |events: Vec<till::notify::Event>| -> Vec<String> {
        events.into_iter().map(|e| e.id).collect()
    };
    let page = till::notify::after(db, Position::default(), None, 10)
        .await
        .unwrap();
    let cursor = page.last().unwrap().position;
    assert_eq!(ids(page), ["evt_second"]);
    first_tx.commit().await.unwrap();
    let page = till::notify::after(db, cursor, None, 10).await.unwrap();
    assert_eq!(ids(page), ["evt_first"]);
    drop((first, second));
    app.close().await;
}

/// SQLite: the one writer commits transactions in the order they run, so an event is
/// numbered in the transaction that writes it — none waits for the sequencer (no relay runs
/// here), and positions follow insertion with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_events_are_numbered_as_they_are_written() {
    let app = TestApp::spawn_with(Backend::Sqlite, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 49_900, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    assert_eq!(app.pay(&id, "card", "pm_card_visa").await.0, 201);
    let mut conn = app.state().db.reads.acquire().await.unwrap();
    let positions: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT position FROM events ORDER BY seq")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert!(positions.len() >= 3, "{positions:?}");
    let numbered: Vec<Option<i64>> = (1..=positions.len() as i64).map(Some).collect();
    assert_eq!(positions, numbered);
    assert!(!store::unsequenced(&mut conn).await.unwrap());
    drop(conn);
    let listed = all_events(&app, "", 100).await;
    assert_eq!(listed.len(), positions.len());
    app.finish().await;
}
