//! The console at `/admin` over real HTTP: signed in with the API key only, a session
//! cookie that is `HttpOnly` and `SameSite=Strict`, stored hashed and ending at sign-out or
//! expiry; every form refused without its session's CSRF token; no page holding the API
//! key; and its refund and stock edit going through the same paths as the API's.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use till::ids::sha256_hex;

use crate::both;
use crate::helpers::{Backend, TestApp, API_KEY};

both!(
    pages_redirect_to_sign_in_without_a_session,
    signing_in_takes_the_api_key_and_sets_a_strict_http_only_cookie,
    no_page_holds_the_api_key,
    forms_are_refused_without_their_sessions_csrf_token,
    a_session_ends_at_sign_out_and_at_expiry,
    a_refund_and_a_stock_edit_go_through_the_apis_paths,
);

/// A client that shows redirects instead of following them and keeps no cookies.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of a `Set-Cookie` for `name`, and the whole header.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap().to_string(), v.to_string()))
}

/// The first CSRF token in a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token");
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A signed-in browser: its cookie header and the CSRF token of its forms.
struct Browser {
    http: reqwest::Client,
    url: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// The idempotency key of the refund form on an order's page (new each time it is shown).
    async fn refund_key(&self, order_page: &str) -> String {
        let (_, page) = self.get(order_page).await;
        let marker = r#"name="key" value=""#;
        let rest = &page[page.find(marker).expect("a refund form") + marker.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header(COOKIE, &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap()
    }
}

/// Signs in as a browser would: the form (and its cookie), then the key.
async fn sign_in(app: &TestApp, key: &str) -> (reqwest::Response, String) {
    let http = client();
    let form = http
        .get(format!("{}/admin/sign-in", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let (pre, header) = set_cookie(&form, "till_csrf").expect("a CSRF cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    let csrf = csrf_of(&form.text().await.unwrap());
    let resp = http
        .post(format!("{}/admin/sign-in", app.url))
        .header(COOKIE, &pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("api_key", key), ("csrf", &csrf)]).unwrap())
        .send()
        .await
        .unwrap();
    (resp, pre)
}

async fn signed_in(app: &TestApp) -> Browser {
    let (resp, _) = sign_in(app, API_KEY).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (cookie, _) = set_cookie(&resp, "till_admin").expect("a session cookie");
    let mut browser = Browser {
        http: client(),
        url: app.url.clone(),
        cookie,
        csrf: String::new(),
    };
    let (status, page) = browser.get("/admin").await;
    assert_eq!(status, 200, "{page}");
    browser.csrf = csrf_of(&page);
    browser
}

const PAGES: &[&str] = &[
    "/admin",
    "/admin/orders",
    "/admin/inventory",
    "/admin/coupons",
    "/admin/tax",
    "/admin/webhooks",
    "/admin/events",
];

async fn pages_redirect_to_sign_in_without_a_session(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 50_000, 100).await;
    let order = app.new_order("TEE-1", 1).await;
    let http = client();
    let order_page = format!("/admin/orders/{order}");
    for path in PAGES.iter().copied().chain([order_page.as_str()]) {
        for cookie in [None, Some("till_admin=not-a-session")] {
            let mut req = http.get(format!("{}{path}", app.url));
            if let Some(cookie) = cookie {
                req = req.header(COOKIE, cookie);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(resp.headers()[LOCATION], "/admin/sign-in", "{path}");
        }
    }
    // A form without a session changes nothing either.
    let resp = http
        .post(format!("{}/admin/orders/{order}/cancel", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.order(&order).await["status"], "pending");
    app.finish().await;
}

async fn signing_in_takes_the_api_key_and_sets_a_strict_http_only_cookie(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (wrong, _) = sign_in(&app, "till_sk_not_the_key").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "till_admin").is_none());

    // The sign-in form's token must match its cookie: without it, refused.
    let resp = client()
        .post(format!("{}/admin/sign-in", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("api_key", API_KEY), ("csrf", "x")]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&resp, "till_admin").is_none());

    let (resp, _) = sign_in(&app, API_KEY).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/admin");
    let (cookie, header) = set_cookie(&resp, "till_admin").expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
        assert!(header.contains(part), "{header} lacks {part}");
    }
    // Only the token's hash is stored.
    let token = cookie.trim_start_matches("till_admin=");
    assert!(token.len() >= 32, "{token}");
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    let stored = till::web::admin::store::session_key(&mut conn, token, app.clock.now_ms())
        .await
        .unwrap();
    assert!(stored.is_none(), "the token itself is not a stored key");
    let stored = till::web::admin::store::session_key(
        &mut conn,
        &sha256_hex(token.as_bytes()),
        app.clock.now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(stored, Some(sha256_hex(API_KEY.as_bytes())));
    drop(conn);
    app.finish().await;
}

async fn no_page_holds_the_api_key(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 50_000, 100).await;
    let order = app.new_order("TEE-1", 1).await;
    let (status, payment) = app.pay(&order, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{payment}");
    let browser = signed_in(&app).await;
    let order_page = format!("/admin/orders/{order}");
    let sku_page = "/admin/inventory/TEE-1";
    for path in PAGES.iter().copied().chain([order_page.as_str(), sku_page]) {
        let (status, page) = browser.get(path).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(page.contains("<html"), "{path} is a page");
        assert!(!page.contains(API_KEY), "{path} shows the API key");
        assert!(
            !page.contains(&sha256_hex(API_KEY.as_bytes())),
            "{path} shows its hash"
        );
    }
    let (_, page) = browser.get(&order_page).await;
    assert!(
        page.contains("order.confirmed"),
        "the timeline is on the order's page"
    );
    app.finish().await;
}

async fn forms_are_refused_without_their_sessions_csrf_token(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 50_000, 100).await;
    let order = app.new_order("TEE-1", 1).await;
    let browser = signed_in(&app).await;
    let other = signed_in(&app).await;
    assert_ne!(browser.csrf, other.csrf, "each session has its own token");
    let path = format!("/admin/orders/{order}/cancel");
    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", other.csrf.as_str())],
    ] {
        let resp = browser.post(&path, &form).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{form:?}");
    }
    let resp = browser
        .post(
            "/admin/inventory/TEE-1/stock",
            &[("warehouse", "blr-1"), ("on_hand", "0")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = browser.post("/admin/sign-out", &[("csrf", "wrong")]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.order(&order).await["status"], "pending");
    assert_eq!(app.inventory("TEE-1").await["on_hand"], 100);

    let resp = browser
        .post(&path, &[("csrf", browser.csrf.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.order(&order).await["status"], "cancelled");
    app.finish().await;
}

async fn a_session_ends_at_sign_out_and_at_expiry(b: Backend) {
    let app = TestApp::spawn(b).await;
    let browser = signed_in(&app).await;
    let resp = browser
        .post("/admin/sign-out", &[("csrf", browser.csrf.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, cleared) = set_cookie(&resp, "till_admin").expect("the cookie cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _) = browser.get("/admin").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");

    let browser = signed_in(&app).await;
    app.clock
        .advance_ms(till::web::admin::SESSION_TTL_MS - 60_000);
    assert_eq!(browser.get("/admin").await.0, 200, "still open");
    app.clock.advance_ms(60_000);
    assert_eq!(
        browser.get("/admin").await.0,
        StatusCode::SEE_OTHER,
        "expired"
    );
    app.finish().await;
}

async fn a_refund_and_a_stock_edit_go_through_the_apis_paths(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 50_000, 100).await;
    let order = app.new_order("TEE-1", 2).await;
    let (status, payment) = app.pay(&order, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{payment}");
    let browser = signed_in(&app).await;
    let path = format!("/admin/orders/{order}/refund");
    let order_page = format!("/admin/orders/{order}");
    // More than was paid: refused as the API refuses it, nothing refunded.
    let key = browser.refund_key(&order_page).await;
    let resp = browser
        .post(
            &path,
            &[
                ("csrf", browser.csrf.as_str()),
                ("key", &key),
                ("amount", "100000"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = resp.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.contains("error=amount+must+be"), "{to}");
    assert!(app.order(&order).await["refunds"]
        .as_array()
        .unwrap()
        .is_empty());

    // The same form sent twice (a double click): one refund.
    let key = browser.refund_key(&order_page).await;
    let form = [
        ("csrf", browser.csrf.as_str()),
        ("key", &key),
        ("amount", "1.50"),
    ];
    let first = browser.post(&path, &form).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let again = browser.post(&path, &form).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let to = again.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.contains("more+than+once"), "{to}");
    let view = app.order(&order).await;
    assert_eq!(view["refunds"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["refunds"][0]["amount"], 150, "{view}");
    // A form without its key refunds nothing.
    let resp = browser
        .post(&path, &[("csrf", browser.csrf.as_str()), ("amount", "1")])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.order(&order).await["refunds"].as_array().unwrap().len(),
        1
    );
    let (_, page) = browser.get(&order_page).await;
    assert!(
        page.contains(view["refunds"][0]["id"].as_str().unwrap()),
        "the refund is listed"
    );

    let resp = browser
        .post(
            "/admin/inventory/TEE-1/stock",
            &[
                ("csrf", browser.csrf.as_str()),
                ("warehouse", "blr-1"),
                ("on_hand", "42"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stock = app.inventory("TEE-1").await;
    assert_eq!(stock["on_hand"], 42, "{stock}");
    let (_, page) = browser.get("/admin/inventory/TEE-1").await;
    assert!(page.contains("adjustment"), "the edit is in the ledger");
    // Below what is held: refused with the API's reason, stock unchanged.
    let held = app.new_order("TEE-1", 5).await;
    let resp = browser
        .post(
            "/admin/inventory/TEE-1/stock",
            &[
                ("csrf", browser.csrf.as_str()),
                ("warehouse", "blr-1"),
                ("on_hand", "1"),
            ],
        )
        .await;
    assert!(resp.headers()[LOCATION]
        .to_str()
        .unwrap()
        .contains("error="));
    assert_eq!(app.inventory("TEE-1").await["on_hand"], 42);
    assert_eq!(app.order(&held).await["status"], "pending");
    app.finish().await;
}
