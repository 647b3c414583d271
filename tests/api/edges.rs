//! Production edges: one customer cannot hoard stock, no secret rests in the database or the
//! log, the rate limiter keys on verified credentials, every error has a JSON body,
//! `/metrics` can be guarded, fingerprints compare numbers exactly, `null` is not a value,
//! and `/openapi.json` says what the server does.
//!
//! Over 400 lines: one test per production edge named above.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp, TestDb, API_KEY};

both!(
    one_customer_holds_at_most_five_pending_orders,
    seed_lock_is_capped_per_user_id,
    fifty_parallel_orders_of_one_customer_leave_five_pending,
    zero_means_no_pending_limit,
    no_secret_rests_in_the_database,
    no_secret_reaches_the_log,
    junk_tokens_share_one_bucket_per_address,
    every_error_status_has_a_json_body,
    metrics_token_guards_metrics,
    fingerprints_compare_numbers_exactly,
    null_is_not_a_value,
    openapi_matches_the_server
);

fn order_for(customer: &str, qty: i64) -> Value {
    json!({"customer": {"id": customer}, "items": [{"sku": "TEE-1", "qty": qty}]})
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap()
}

async fn one_customer_holds_at_most_five_pending_orders(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10_000).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (status, order) = app
            .call(Method::POST, "/v1/orders", Some(order_for("u_1", 1000)))
            .await;
        assert_eq!(status, 201, "{order}");
        ids.push(order["id"].as_str().unwrap().to_string());
    }
    let sixth = app
        .call(Method::POST, "/v1/orders", Some(order_for("u_1", 1000)))
        .await;
    assert_error(&sixth, 429, "too_many_pending_orders");
    // Nothing locked or written for the sixth, with or without an idempotency key.
    let keyed = app
        .request(Method::POST, "/v1/orders")
        .header("Idempotency-Key", "hoard-6")
        .json(&order_for("u_1", 1000));
    assert_error(&app.send(keyed).await, 429, "too_many_pending_orders");
    assert_eq!(app.stock("TEE-1").await, (10_000, 5000));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 5);
    // Another customer, and an order without a customer, are not affected.
    assert_eq!(
        app.call(Method::POST, "/v1/orders", Some(order_for("u_2", 1)))
            .await
            .0,
        201
    );
    let anonymous = json!({"items": [{"sku": "TEE-1", "qty": 1}]});
    assert_eq!(
        app.call(Method::POST, "/v1/orders", Some(anonymous))
            .await
            .0,
        201
    );
    // An order that ends frees its slot: cancelled ...
    let (status, _) = app
        .call(Method::POST, &format!("/v1/orders/{}/cancel", ids[0]), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.call(Method::POST, "/v1/orders", Some(order_for("u_1", 1)))
            .await
            .0,
        201
    );
    assert_error(
        &app.call(Method::POST, "/v1/orders", Some(order_for("u_1", 1)))
            .await,
        429,
        "too_many_pending_orders",
    );
    // ... confirmed ...
    assert_eq!(app.pay(&ids[1], "card", "pm_card_visa").await.0, 201);
    app.wait_for_status(&ids[1], "confirmed").await;
    assert_eq!(
        app.call(Method::POST, "/v1/orders", Some(order_for("u_1", 1)))
            .await
            .0,
        201
    );
    // ... or expired.
    app.clock.advance_ms(app.state().hold_ttl_ms + 1);
    app.run_workers().await;
    for _ in 0..5 {
        assert_eq!(
            app.call(Method::POST, "/v1/orders", Some(order_for("u_1", 1)))
                .await
                .0,
            201
        );
    }
    app.finish().await;
}

async fn seed_lock_is_capped_per_user_id(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10_000).await;
    let lock = |id: String, user: Option<&str>| {
        let mut body = json!({"order_id": id, "items": [{"sku": "TEE-1", "qty": 1000}]});
        if let Some(user) = user {
            body["user_id"] = json!(user);
        }
        app.call(Method::POST, "/inventory/lock", Some(body))
    };
    for n in 0..5 {
        let (status, order) = lock(format!("O{n}"), Some("shopper-1")).await;
        assert_eq!(status, 201, "{order}");
        assert_eq!(order["customer"]["id"], "shopper-1");
    }
    assert_error(
        &lock("O5".into(), Some("shopper-1")).await,
        429,
        "too_many_pending_orders",
    );
    // Locking an id again is still idempotent, not refused.
    assert_eq!(lock("O0".into(), Some("shopper-1")).await.0, 201);
    // A merchant's server locking for many shoppers without `user_id` is not capped.
    for n in 0..4 {
        let (status, body) = lock(format!("M{n}"), None).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(app.stock("TEE-1").await, (10_000, 9000));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 9);
    app.finish().await;
}

async fn fifty_parallel_orders_of_one_customer_leave_five_pending(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 1000).await;
    let results = futures::future::join_all(
        (0..50).map(|_| app.call(Method::POST, "/v1/orders", Some(order_for("u_9", 1)))),
    )
    .await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    for got in results.iter().filter(|(s, _)| *s != 201) {
        assert_error(got, 429, "too_many_pending_orders");
    }
    assert_eq!(created, 5);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders WHERE status = 'pending'").await,
        5
    );
    assert_eq!(app.stock("TEE-1").await, (1000, 5));
    app.finish().await;
}

async fn zero_means_no_pending_limit(b: Backend) {
    let app = TestApp::spawn_with(b, till::Workers::Run, |cfg| {
        cfg.max_pending_per_customer = 0
    })
    .await;
    app.stocked("TEE-1", 100, 100).await;
    for _ in 0..8 {
        let got = app
            .call(Method::POST, "/v1/orders", Some(order_for("u_1", 1)))
            .await;
        assert_eq!(got.0, 201, "{}", got.1);
    }
    app.finish().await;
}

/// Every text value of every column of every table.
async fn every_text_in_the_database(app: &TestApp, b: Backend) -> Vec<String> {
    let pool = &app.state().db.pool;
    let tables: Vec<String> = match b {
        Backend::Sqlite => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        Backend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        ),
    }
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "idempotency_keys"), "{tables:?}");
    let mut texts = Vec::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(pool)
            .await
            .unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    texts.push(text);
                }
            }
        }
    }
    texts
}

async fn checkout_with_key(app: &TestApp) -> String {
    app.stocked("TEE-1", 100, 10).await;
    let post = || {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", "secret-order")
            .json(&order_for("u_1", 1))
    };
    let (status, first) = app.send(post()).await;
    assert_eq!(status, 201, "{first}");
    let (status, replay) = app.send(post()).await;
    assert_eq!(status, 201, "{replay}");
    assert_eq!(
        first, replay,
        "the replay is the same body, secret included"
    );
    first["client_secret"].as_str().unwrap().to_string()
}

async fn no_secret_rests_in_the_database(b: Backend) {
    let app = TestApp::spawn(b).await;
    let secret = checkout_with_key(&app).await;
    let random_part = secret.rsplit_once("_secret_").unwrap().1.to_string();
    // The secret still works after the replay (the stored answer is sealed, not a new one).
    let id = secret.rsplit_once("_secret_").unwrap().0;
    let read = app
        .http
        .get(format!("{}/v1/orders/{id}", app.url))
        .bearer_auth(&secret);
    assert_eq!(app.send(read).await.0, 200);
    let texts = every_text_in_the_database(&app, b).await;
    assert!(texts.len() > 10, "{texts:?}");
    for needle in [secret.as_str(), random_part.as_str(), API_KEY] {
        let found: Vec<&String> = texts.iter().filter(|t| t.contains(needle)).collect();
        assert!(
            found.is_empty(),
            "{needle} stored in the database: {found:?}"
        );
    }
    // Nor in the files underneath: SQLite's database and write-ahead log, PostgreSQL's WAL
    // (where every committed row passes in clear). The order id, stored in clear, shows the
    // search reads the right bytes.
    let files = storage_files(&app, b).await;
    let holds = |needle: &str| files.iter().any(|bytes| contains(bytes, needle.as_bytes()));
    assert!(holds(id), "the order id is not in the storage files read");
    for needle in [secret.as_str(), random_part.as_str(), API_KEY] {
        assert!(!holds(needle), "{needle} is in the storage files");
    }
    app.finish().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes of the files the database keeps this test's data in: the SQLite file and its
/// WAL, or the PostgreSQL WAL segments written in the last minutes (read from the server's
/// data directory, which these tests share a machine with).
async fn storage_files(app: &TestApp, b: Backend) -> Vec<Vec<u8>> {
    match b {
        Backend::Sqlite => {
            let db = app.db.url.trim_start_matches("sqlite://").to_string();
            ["", "-wal"]
                .iter()
                .filter_map(|suffix| std::fs::read(format!("{db}{suffix}")).ok())
                .collect()
        }
        Backend::Postgres => {
            let pool = &app.state().db.pool;
            let dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
                .fetch_one(pool)
                .await
                .unwrap();
            let wal = std::path::Path::new(&dir).join("pg_wal");
            let recent = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
            let segments: Vec<Vec<u8>> = std::fs::read_dir(&wal)
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL's WAL at {} must be readable: {e}",
                        wal.display()
                    )
                })
                .filter_map(Result::ok)
                .filter(|e| {
                    e.metadata()
                        .is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t >= recent))
                })
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect();
            assert!(
                !segments.is_empty(),
                "no recent WAL segment in {}",
                wal.display()
            );
            segments
        }
    }
}

async fn no_secret_reaches_the_log(b: Backend) {
    let db = TestDb::new(b).await;
    let dir = std::env::temp_dir().join(format!("till-log-{}", till::ids::random_token(10)));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("till.log");
    let env = [
        ("TILL_METRICS_TOKEN", "metrics-token-in-env"),
        ("RUST_LOG", "trace"),
    ];
    let mut till = crate::crash::spawn_till(&db, "", &log, &env).await;
    let url = till.url.clone();
    let http = reqwest::Client::new();
    let send = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{url}{path}"))
            .bearer_auth(token)
            .header("Idempotency-Key", "log-1");
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let product = json!({"name": "Tee", "price": {"amount": 100, "currency": "INR"}});
    assert_eq!(
        send(Method::PUT, "/v1/products/TEE-1", API_KEY, Some(product))
            .await
            .0,
        200
    );
    let stock = json!({"on_hand": 5});
    let path = "/v1/inventory/TEE-1/warehouses/blr-1";
    assert_eq!(send(Method::PUT, path, API_KEY, Some(stock)).await.0, 200);
    let (status, order) = send(
        Method::POST,
        "/v1/orders",
        API_KEY,
        Some(order_for("u_1", 1)),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let (status, replay) = send(
        Method::POST,
        "/v1/orders",
        API_KEY,
        Some(order_for("u_1", 1)),
    )
    .await;
    assert_eq!((status, &replay), (StatusCode::CREATED, &order));
    let secret = order["client_secret"].as_str().unwrap().to_string();
    let id = order["id"].as_str().unwrap();
    let pay = json!({"method": "card", "source": "pm_card_visa"});
    let (status, payment) = send(
        Method::POST,
        &format!("/v1/orders/{id}/payments"),
        &secret,
        Some(pay),
    )
    .await;
    assert_eq!(status, 201, "{payment}");
    let metrics = http
        .get(format!("{url}/metrics"))
        .bearer_auth("metrics-token-in-env")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = till.child.kill();
    let _ = till.child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "not a trace log: {text}"
    );
    let random_part = secret.rsplit_once("_secret_").unwrap().1;
    for needle in [
        secret.as_str(),
        random_part,
        API_KEY,
        "metrics-token-in-env",
    ] {
        assert!(!text.contains(needle), "{needle} is in the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await;
}

async fn junk_tokens_share_one_bucket_per_address(b: Backend) {
    let app = TestApp::spawn_with(b, till::Workers::Run, |cfg| cfg.rate_limit_per_sec = 2).await;
    let mut statuses = Vec::new();
    for n in 0..10 {
        let resp = app
            .http
            .get(format!("{}/v1/inventory/NOPE", app.url))
            .bearer_auth(format!("junk-{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "every junk token had a bucket: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    // No token at all draws from the same address bucket.
    let none = app.http.get(format!("{}/v1/inventory/NOPE", app.url));
    assert_error(&app.send(none).await, 429, "rate_limited");
    // The API key holder has a bucket of its own, and so has an order's client secret.
    app.stocked("TEE-1", 100, 10).await;
    let order = app.order_of("TEE-1", 1).await;
    let secret = order["client_secret"].as_str().unwrap();
    let read = app
        .http
        .get(format!(
            "{}/v1/orders/{}",
            app.url,
            order["id"].as_str().unwrap()
        ))
        .bearer_auth(secret);
    assert_eq!(app.send(read).await.0, 200);
    app.finish().await;
}

async fn every_error_status_has_a_json_body(b: Backend) {
    let app = TestApp::spawn(b).await;
    let wrong_method = app.call(Method::DELETE, "/v1/orders", None).await;
    assert_error(&wrong_method, 405, "method_not_allowed");
    let long_uri = format!("/v1/orders/{}", "a".repeat(10 * 1024));
    assert_error(
        &app.call(Method::GET, &long_uri, None).await,
        414,
        "uri_too_long",
    );
    let big_header = app
        .request(Method::GET, "/v1/inventory/NOPE")
        .header("x-pad", "a".repeat(40 * 1024));
    assert_error(&app.send(big_header).await, 431, "headers_too_large");
    let mut many = app.request(Method::GET, "/v1/inventory/NOPE");
    for n in 0..80 {
        many = many.header(format!("x-pad-{n}"), "a");
    }
    assert_error(&app.send(many).await, 431, "headers_too_large");
    // A path that is not valid UTF-8 once decoded is a JSON 400, not plain text.
    assert_error(
        &app.call(Method::GET, "/v1/orders/%FF", None).await,
        400,
        "invalid_request",
    );
    app.finish().await;
}

async fn metrics_token_guards_metrics(b: Backend) {
    let app = TestApp::spawn_with(b, till::Workers::Run, |cfg| {
        cfg.metrics_token = Some("scrape-me".into())
    })
    .await;
    let get = |token: Option<&str>| {
        let mut req = app.http.get(format!("{}/metrics", app.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    };
    assert_error(&app.send(get(None)).await, 401, "unauthorized");
    assert_error(&app.send(get(Some("wrong"))).await, 401, "unauthorized");
    assert_error(&app.send(get(Some(API_KEY))).await, 401, "unauthorized");
    let resp = get(Some("scrape-me")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("till_checkouts_total"));
    // Unset, it is open (as `health_ready_metrics_and_openapi` checks too).
    let open = TestApp::spawn(b).await;
    let resp = open
        .http
        .get(format!("{}/metrics", open.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    open.finish().await;
    app.finish().await;
}

async fn fingerprints_compare_numbers_exactly(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 49900, 10).await;
    let (status, order) = app
        .call(
            Method::POST,
            "/inventory/lock",
            Some(json!({"order_id": "O1", "items": [{"sku": "TEE-1", "qty": 2}]})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let initiate = |amount: &str| {
        let body = format!(
            r#"{{"orderId": "O1", "amount": {amount}, "payment_method": "card", "idempotency_key": "k-998"}}"#
        );
        app.request(Method::POST, "/payment/initiate")
            .header("content-type", "application/json")
            .body(body)
    };
    let (status, payment) = app.send(initiate("998.0")).await;
    assert_eq!(status, 201, "{payment}");
    assert_error(
        &app.send(initiate("998.0000000000000001")).await,
        422,
        "idempotency_key_reused",
    );
    // The same number written another way is the same request.
    let (status, again) = app.send(initiate("9.980e2")).await;
    assert_eq!((status.as_u16(), &again["id"]), (201, &payment["id"]));
    app.finish().await;
}

async fn null_is_not_a_value(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 1000, 10).await;
    let id = app.new_order("TEE-1", 2).await;
    assert_eq!(app.pay(&id, "card", "pm_card_visa").await.0, 201);
    app.wait_for_status(&id, "confirmed").await;
    let refund = app
        .call(
            Method::POST,
            &format!("/v1/orders/{id}/refunds"),
            Some(json!({"amount": null})),
        )
        .await;
    assert_error(&refund, 400, "invalid_request");
    let order = app.order(&id).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM refunds").await, 0);
    let orders_before = count(&app, "SELECT COUNT(*) FROM orders").await;
    let item = json!([{"sku": "TEE-1", "qty": 1}]);
    for body in [
        json!({"customer": null, "items": item}),
        json!({"ship_to": null, "items": item}),
        json!({"customer": {"id": null}, "items": item}),
        json!({"customer": {"id": "u", "email": null}, "items": item}),
        json!({"ship_to": {"country": "IN", "region": null}, "items": item}),
        json!({"items": null}),
        json!({"items": [{"sku": "TEE-1", "qty": null}]}),
    ] {
        let got = app
            .call(Method::POST, "/v1/orders", Some(body.clone()))
            .await;
        assert_error(&got, 400, "invalid_request");
    }
    let lock = json!({"order_id": "O9", "user_id": null, "items": item});
    assert_error(
        &app.call(Method::POST, "/inventory/lock", Some(lock)).await,
        400,
        "invalid_request",
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM orders").await,
        orders_before
    );
    let pending = app.new_order("TEE-1", 1).await;
    let initiates = [
        json!({"orderId": pending, "amount": 10.0, "payment_method": "card", "idempotency_key": "n1", "source": null}),
        json!({"orderId": pending, "amount": null, "payment_method": "card", "idempotency_key": "n2"}),
    ];
    for initiate in initiates {
        let got = app
            .call(Method::POST, "/payment/initiate", Some(initiate))
            .await;
        assert_error(&got, 400, "invalid_request");
    }
    let product =
        json!({"name": "Tee", "price": {"amount": 5, "currency": "INR"}, "tax_code": null});
    assert_error(
        &app.call(Method::PUT, "/v1/products/TEE-1", Some(product))
            .await,
        400,
        "invalid_request",
    );
    let stored = app.call(Method::GET, "/v1/products/TEE-1", None).await.1;
    assert_eq!(stored["price"]["amount"], 1000);
    assert_eq!(app.order(&pending).await["payments"], json!([]));
    app.finish().await;
}

async fn openapi_matches_the_server(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (status, doc) = app
        .send(app.http.get(format!("{}/openapi.json", app.url)))
        .await;
    assert_eq!(status, 200);
    let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(metrics["text/plain"].is_object(), "{metrics}");
    assert!(metrics["application/json"].is_null(), "{metrics}");
    assert!(doc["paths"]["/v1/orders/{id}/cancel"]["post"]["responses"]["400"].is_object());
    // What the server answers to no credential and to a malformed body is documented.
    for route in till::http::openapi::ROUTES {
        let (method, path) = crate::helpers::route_example(route);
        let documented = &doc["paths"][route.path][route.method]["responses"];
        let mut answers = vec![
            app.send(
                app.http
                    .request(method.clone(), format!("{}{path}", app.url)),
            )
            .await,
        ];
        if route.method != "get" {
            let malformed = app
                .request(method.clone(), &path)
                .header("content-type", "application/json")
                .body("{");
            answers.push(app.send(malformed).await);
        }
        for (status, body) in answers {
            assert!(
                documented[status.as_str()].is_object(),
                "{} {} answered {status} {body}, not documented: {documented}",
                route.method,
                route.path
            );
        }
    }
    app.finish().await;
}
