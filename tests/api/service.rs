//! Service endpoints: health, readiness, metrics, and the OpenAPI document.

use reqwest::Method;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(health_ready_metrics_and_openapi);

async fn health_ready_metrics_and_openapi(b: Backend) {
    let app = TestApp::spawn(b).await;
    assert_eq!(
        app.http
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stocked("TEE-1", 100, 1).await;
    app.order_of("TEE-1", 1).await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("till_checkouts_total{outcome=\"created\"} 1"),
        "{metrics}"
    );
    let (status, doc) = app
        .send(app.http.get(format!("{}/openapi.json", app.url)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented route is served (never the JSON 404 of an unknown route).
    for route in till::http::openapi::ROUTES {
        let (method, path) = crate::helpers::route_example(route);
        let (status, body) = app.call(method, &path, None).await;
        let unknown_route = status == 404 && body["error"]["message"] == "route not found";
        assert!(
            !unknown_route && status != 405,
            "{} {} is documented but not served: {status} {body}",
            route.method,
            route.path
        );
        assert!(
            doc["paths"][route.path][route.method].is_object(),
            "{} {} missing from openapi.json",
            route.method,
            route.path
        );
    }
    app.finish().await;
}

both!(rate_limit_answers_429_per_credential);

async fn rate_limit_answers_429_per_credential(b: Backend) {
    let app = TestApp::spawn_with(b, till::Workers::Run, |cfg| cfg.rate_limit_per_sec = 2).await;
    let mut limited = None;
    for _ in 0..10 {
        let resp = app
            .request(Method::GET, "/v1/inventory/NOPE")
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
            limited = Some(resp.json::<serde_json::Value>().await.unwrap());
            break;
        }
    }
    let body = limited.expect("the limit was never reached");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another credential has its own allowance.
    let other = app
        .http
        .get(format!("{}/healthz", app.url))
        .bearer_auth("someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    app.finish().await;
}
