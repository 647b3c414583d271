//! The storefront's one write that needs no order: an empty shop's button stocks the
//! example products (so `till serve` alone lets a newcomer buy something), only with the
//! form's CSRF token, and never touches a catalog that has products. The shop's pages
//! themselves are tested in Chromium (tests/browser).

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(
    an_empty_shop_stocks_the_example_products_with_one_button,
    the_example_products_never_join_a_real_catalog,
);

/// A browser without cookies that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The shop's front page as a new browser sees it: its text and the CSRF cookie it set.
async fn front_page(app: &TestApp) -> (String, String) {
    let resp = client()
        .get(format!("{}/shop", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("till_csrf="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("a CSRF cookie");
    (resp.text().await.unwrap(), cookie)
}

/// The form's hidden token.
fn csrf_of(page: &str) -> &str {
    let marker = r#"name="csrf" value=""#;
    let rest = &page[page.find(marker).expect("a form") + marker.len()..];
    &rest[..rest.find('"').unwrap()]
}

async fn press(app: &TestApp, cookie: &str, csrf: &str) -> reqwest::Response {
    client()
        .post(format!("{}/shop/demo-catalog", app.url))
        .header(COOKIE, cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap()
}

const DEMO: [&str; 3] = ["DEMO-TEE", "DEMO-MUG", "DEMO-NOTEBOOK"];

/// Which of the example products the catalog has.
async fn demo_skus(app: &TestApp) -> Vec<&'static str> {
    let mut found = Vec::new();
    for sku in DEMO {
        let path = format!("/v1/products/{sku}");
        let (status, body) = app.send(app.request(reqwest::Method::GET, &path)).await;
        match status.as_u16() {
            200 => found.push(sku),
            404 => {}
            _ => panic!("{sku}: {status} {body}"),
        }
    }
    found
}

async fn an_empty_shop_stocks_the_example_products_with_one_button(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (page, cookie) = front_page(&app).await;
    assert!(page.contains("no products yet"), "{page}");
    assert!(page.contains(r#"action="/shop/demo-catalog""#), "{page}");
    let csrf = csrf_of(&page).to_string();

    // Without the form's token nothing is stocked.
    let refused = press(&app, &cookie, "not-the-token").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(demo_skus(&app).await.is_empty());

    let stocked = press(&app, &cookie, &csrf).await;
    assert_eq!(stocked.status(), StatusCode::SEE_OTHER);
    assert_eq!(stocked.headers()[LOCATION], "/shop");
    assert_eq!(demo_skus(&app).await, DEMO);
    assert_eq!(app.stock("DEMO-TEE").await, (50, 0));

    // Pressed again (a second tab, a double click): nothing more.
    let again = press(&app, &cookie, &csrf).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(demo_skus(&app).await, DEMO);
    assert_eq!(app.stock("DEMO-TEE").await, (50, 0));

    // And the example products sell like any other.
    let order = app.new_order("DEMO-TEE", 2).await;
    let (status, payment) = app.pay(&order, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{payment}");
    app.wait_for_status(&order, "confirmed").await;
    app.finish().await;
}

async fn the_example_products_never_join_a_real_catalog(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (page, cookie) = front_page(&app).await;
    let csrf = csrf_of(&page).to_string();
    app.stocked("TEE-1", 49_900, 5).await;
    let (page, _) = front_page(&app).await;
    assert!(!page.contains("/shop/demo-catalog"), "{page}");
    let resp = press(&app, &cookie, &csrf).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(demo_skus(&app).await.is_empty());
    app.finish().await;
}
