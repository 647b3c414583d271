//! Tax documents over HTTP (docs/api.md, "After the order"): the GST invoice of a confirmed
//! order and the credit note of each refund, as JSON and as PDF — their figures against the
//! order's, who may read them, and that they never change once issued.
//!
//! Over 400 lines: one test per rule of the documents' contract, on both backends, with the
//! PDF checks they share.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use till::money::{Currency, Money};
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    the_invoice_states_the_confirmed_order,
    no_invoice_before_confirmation,
    a_client_secret_reads_its_own_orders_documents_only,
    the_invoice_pdf_is_a_document_with_its_number,
    credit_notes_reverse_partial_and_full_refunds,
    documents_do_not_change_after_the_settings_do,
    a_refund_without_a_credit_note_answers_409,
    an_order_numbered_before_documents_gets_its_invoice_built_once,
);

async fn put(app: &TestApp, path: &str, body: Value) {
    let (status, body) = app.call(Method::PUT, path, Some(body)).await;
    assert_eq!(status, 200, "{path}: {body}");
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, None).await
}

/// The seller in Karnataka (18% GST on apparel, tax exclusive), two products, a 10% coupon.
async fn shop(app: &TestApp) {
    put(
        app,
        "/v1/settings/tax",
        json!({"origin": {"country": "IN", "region": "KA"}, "prices_include_tax": false,
               "gstin": "29ABCDE1234F1ZW", "legal_name": "Asha Textiles Pvt Ltd",
               "address": "12 MG Road, Bengaluru 560001"}),
    )
    .await;
    put(
        app,
        "/v1/tax_codes/apparel",
        json!({"hsn": "6109", "rates": [{"country": "IN", "rate_bps": 1800}]}),
    )
    .await;
    for (sku, name, amount) in [("TEE-1", "Cotton Tee", 10_000), ("CAP-1", "Cap", 2_599)] {
        put(
            app,
            &format!("/v1/products/{sku}"),
            json!({"name": name, "price": {"amount": amount, "currency": "INR"}, "tax_code": "apparel"}),
        )
        .await;
        let (status, body) = app.set_stock(sku, "blr-1", 100).await;
        assert_eq!(status, 200, "{body}");
    }
    put(
        app,
        "/v1/coupons/SAVE10",
        json!({"kind": "percent", "percent_off": 10}),
    )
    .await;
}

/// A pending order of one tee and three caps to Maharashtra (IGST; a business buyer there,
/// with its GSTIN) or Karnataka (CGST + SGST, a consumer), with the coupon.
async fn pending_order(app: &TestApp, region: &str) -> Value {
    let mut customer = json!({"id": format!("u_{}", till::ids::random_token(8)),
                              "email": "asha@example.com", "name": "Asha Rao"});
    if region == "MH" {
        customer["gstin"] = json!("27aapfu0939f1zv");
    }
    let (status, order) = app
        .call(
            Method::POST,
            "/v1/orders",
            Some(json!({
                "customer": customer,
                "items": [{"sku": "TEE-1", "qty": 1}, {"sku": "CAP-1", "qty": 3}],
                "ship_to": {"country": "IN", "region": region, "postal_code": "560001", "city": "Bengaluru", "line1": "1 Residency Rd"},
                "coupon": "SAVE10"})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    order
}

async fn confirmed_order(app: &TestApp, region: &str) -> Value {
    let order = pending_order(app, region).await;
    let id = order["id"].as_str().unwrap();
    let (status, body) = app.pay(id, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{body}");
    app.wait_for_status(id, "confirmed").await
}

async fn invoice(app: &TestApp, id: &str) -> Value {
    let (status, body) = get(app, &format!("/v1/orders/{id}/invoice")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refund(app: &TestApp, id: &str, amount: Option<i64>) -> Value {
    let body = amount.map_or(json!({}), |a| json!({"amount": a}));
    let (status, r) = app
        .call(
            Method::POST,
            &format!("/v1/orders/{id}/refunds"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["status"], "succeeded", "{r}");
    r
}

async fn pdf(app: &TestApp, path: &str) -> Vec<u8> {
    let resp = app.request(Method::GET, path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("inline; filename=\"INV-")
            || disposition.starts_with("inline; filename=\"CN-"),
        "{disposition}"
    );
    resp.bytes().await.unwrap().to_vec()
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn sum(values: &[Value], key: &str) -> i64 {
    values.iter().map(|v| n(&v[key])).sum()
}

/// A tax document adds up: each line's tax is its tax lines, its total its taxable value
/// and tax; the lines make the document's figures; the total is said in words.
fn assert_adds_up(doc: &Value) {
    let lines = doc["lines"].as_array().unwrap();
    for line in lines {
        assert_eq!(
            n(&line["tax"]),
            sum(line["tax_lines"].as_array().unwrap(), "amount"),
            "{line}"
        );
        assert_eq!(
            n(&line["total"]),
            n(&line["taxable_amount"]) + n(&line["tax"]),
            "{line}"
        );
    }
    assert_eq!(n(&doc["taxable_amount"]), sum(lines, "taxable_amount"));
    assert_eq!(n(&doc["tax"]), sum(lines, "tax"));
    assert_eq!(
        n(&doc["tax"]),
        sum(doc["tax_lines"].as_array().unwrap(), "amount")
    );
    assert_eq!(n(&doc["total"]), n(&doc["taxable_amount"]) + n(&doc["tax"]));
    let inr = Currency::parse("INR").unwrap();
    assert_eq!(
        doc["total_in_words"],
        till::documents::amount_in_words(Money::new(n(&doc["total"]), inr))
    );
}

async fn the_invoice_states_the_confirmed_order(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let order = confirmed_order(&app, "KA").await;
    let id = order["id"].as_str().unwrap();
    let inv = invoice(&app, id).await;
    assert_eq!(inv["object"], "invoice");
    assert_eq!(inv["number"], order["invoice_number"]);
    assert_eq!(inv["order_id"], id);
    assert_eq!(inv["currency"], "INR");
    assert_eq!(inv["place_of_supply"], "KA");
    assert_eq!(
        inv["seller"],
        json!({"gstin": "29ABCDE1234F1ZW", "legal_name": "Asha Textiles Pvt Ltd",
               "address": "12 MG Road, Bengaluru 560001", "country": "IN", "state": "KA"})
    );
    assert_eq!(inv["buyer"]["name"], "Asha Rao");
    assert_eq!(inv["buyer"]["ship_to"]["region"], "KA");
    for key in ["subtotal", "discount", "tax", "tax_lines", "total"] {
        assert_eq!(inv[key], order[key], "{key}");
    }
    let items = order["items"].as_array().unwrap();
    let lines = inv["lines"].as_array().unwrap();
    assert_eq!(lines.len(), items.len());
    for (line, item) in lines.iter().zip(items) {
        for key in [
            "sku",
            "qty",
            "unit_amount",
            "amount",
            "discount",
            "hsn",
            "tax",
            "tax_lines",
        ] {
            assert_eq!(line[key], item[key], "{key} of {line}");
        }
        assert_eq!(
            n(&line["taxable_amount"]),
            n(&item["amount"]) - n(&item["discount"])
        );
    }
    let name = |sku: &str| lines.iter().find(|l| l["sku"] == sku).unwrap()["name"].clone();
    assert_eq!(name("TEE-1"), "Cotton Tee");
    assert_eq!(name("CAP-1"), "Cap");
    // 10000 + 7797 less 10% = 16018 taxable; 9% CGST and SGST per line, half up.
    assert_eq!(n(&inv["taxable_amount"]), 16_018);
    let names: Vec<&str> = inv["tax_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CGST", "SGST"]);
    assert_adds_up(&inv);
    // Another state: IGST at the full rate.
    let other = confirmed_order(&app, "MH").await;
    let inv = invoice(&app, other["id"].as_str().unwrap()).await;
    assert_eq!(inv["place_of_supply"], "MH");
    assert_eq!(inv["tax_lines"][0]["name"], "IGST");
    assert_eq!(inv["buyer"]["gstin"], "27AAPFU0939F1ZV");
    let first = &invoice(&app, id).await;
    assert!(first["buyer"]["gstin"].is_null(), "{first}");
    // A GSTIN that does not check out is refused before anything is written.
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/orders",
            Some(json!({"customer": {"gstin": "27AAPFU0939F1ZW"}, "items": [{"sku": "TEE-1", "qty": 1}]})),
        )
        .await;
    assert_error(&(status, body), 400, "invalid_request");
    assert_ne!(inv["number"], order["invoice_number"]);
    assert_adds_up(&inv);
    assert_error(
        &get(&app, "/v1/orders/ord_nope/invoice").await,
        404,
        "not_found",
    );
    app.finish().await;
}

async fn no_invoice_before_confirmation(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let order = pending_order(&app, "KA").await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/v1/orders/{id}/invoice");
    assert_error(&get(&app, &path).await, 409, "invoice_not_issued");
    assert_error(
        &get(&app, &format!("{path}.pdf")).await,
        409,
        "invoice_not_issued",
    );
    // A cancelled order never gets one.
    let (status, body) = app
        .call(Method::POST, &format!("/v1/orders/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_error(&get(&app, &path).await, 409, "invoice_not_issued");
    app.finish().await;
}

async fn a_client_secret_reads_its_own_orders_documents_only(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let mine = pending_order(&app, "KA").await;
    let secret = mine["client_secret"].as_str().unwrap().to_string();
    let id = mine["id"].as_str().unwrap();
    app.pay(id, "card", "pm_card_visa").await;
    app.wait_for_status(id, "confirmed").await;
    let other = confirmed_order(&app, "KA").await;
    let other_id = other["id"].as_str().unwrap();
    let my_refund = refund(&app, id, Some(1_000)).await;
    let other_refund = refund(&app, other_id, Some(1_000)).await;
    let as_customer = |path: String| {
        app.http
            .get(format!("{}{path}", app.url))
            .bearer_auth(&secret)
    };
    for path in [
        format!("/v1/orders/{id}/invoice"),
        format!(
            "/v1/refunds/{}/credit_note",
            my_refund["id"].as_str().unwrap()
        ),
    ] {
        let (status, body) = app.send(as_customer(path.clone())).await;
        assert_eq!(status, 200, "{path}: {body}");
        let resp = as_customer(format!("{path}.pdf")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}.pdf");
    }
    for path in [
        format!("/v1/orders/{other_id}/invoice"),
        format!("/v1/orders/{other_id}/invoice.pdf"),
        format!(
            "/v1/refunds/{}/credit_note",
            other_refund["id"].as_str().unwrap()
        ),
        format!(
            "/v1/refunds/{}/credit_note.pdf",
            other_refund["id"].as_str().unwrap()
        ),
        "/v1/refunds/re_doesnotexist/credit_note".to_string(),
    ] {
        assert_error(&app.send(as_customer(path)).await, 404, "not_found");
    }
    let anonymous = app.http.get(format!("{}/v1/orders/{id}/invoice", app.url));
    assert_error(&app.send(anonymous).await, 401, "unauthorized");
    app.finish().await;
}

/// A PDF parses, has a page or more, embeds its font (a subset, with the rupee sign's
/// glyph) and shows `text`.
fn assert_pdf(bytes: &[u8], text: &[&str]) {
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    let doc = lopdf::Document::load_mem(bytes).expect("the PDF parses");
    let pages = doc.get_pages();
    assert!(!pages.is_empty(), "no page");
    let fonts = doc
        .objects
        .values()
        .filter_map(|o| o.as_dict().ok())
        .filter(|d| d.has(b"FontFile2"))
        .count();
    assert_eq!(fonts, 2, "both faces embedded");
    let page_numbers: Vec<u32> = pages.keys().copied().collect();
    let shown = doc.extract_text(&page_numbers).expect("text extracts");
    for t in text {
        assert!(shown.contains(t), "{t:?} not in the PDF's text:\n{shown}");
    }
}

async fn the_invoice_pdf_is_a_document_with_its_number(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let order = confirmed_order(&app, "KA").await;
    let id = order["id"].as_str().unwrap();
    let inv = invoice(&app, id).await;
    let bytes = pdf(&app, &format!("/v1/orders/{id}/invoice.pdf")).await;
    let number = inv["number"].as_str().unwrap();
    assert_pdf(&bytes, &[number, "Cotton Tee", "29ABCDE1234F1ZW", "₹"]);
    // What other parts (email) call gives the same bytes: the PDF is drawn from the stored
    // invoice alone, so it is the same every time.
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    let order_id = till::ids::OrderId::from(id);
    let direct = till::checkout::invoice_pdf(&mut conn, &order_id)
        .await
        .unwrap();
    assert_eq!(direct.as_deref(), Some(&bytes[..]));
    let doc = till::checkout::invoice_document(&mut conn, &order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::to_value(doc).unwrap(), inv);
    drop(conn);
    eprintln!("{b:?}: one-page invoice PDF: {} bytes", bytes.len());
    if let Ok(path) = std::env::var("TILL_INVOICE_PDF_OUT") {
        std::fs::write(path, &bytes).unwrap();
    }
    assert!(
        bytes.len() < 60_000,
        "a one-page invoice is {} bytes",
        bytes.len()
    );
    app.finish().await;
}

async fn credit_notes_reverse_partial_and_full_refunds(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let order = confirmed_order(&app, "KA").await;
    let id = order["id"].as_str().unwrap();
    let inv = invoice(&app, id).await;
    let first = refund(&app, id, Some(3_541)).await;
    let rest = refund(&app, id, None).await;
    let year = till::orders::financial_year(app.state().now_ms());
    let mut notes = Vec::new();
    for (k, r) in [&first, &rest].into_iter().enumerate() {
        let refund_id = r["id"].as_str().unwrap();
        let (status, note) = get(&app, &format!("/v1/refunds/{refund_id}/credit_note")).await;
        assert_eq!(status, 200, "{note}");
        assert_eq!(note["object"], "credit_note");
        assert_eq!(note["number"], format!("CN/{year}/{:06}", k + 1));
        assert_eq!(note["refund_id"], refund_id);
        assert_eq!(note["invoice_number"], inv["number"]);
        assert_eq!(note["total"], r["amount"]);
        assert_adds_up(&note);
        let bytes = pdf(&app, &format!("/v1/refunds/{refund_id}/credit_note.pdf")).await;
        let mut conn = app.state().db.pool.acquire().await.unwrap();
        let refund = till::ids::RefundId::from(refund_id);
        let direct = till::checkout::credit_note_pdf(&mut conn, &refund)
            .await
            .unwrap();
        assert_eq!(direct.as_deref(), Some(&bytes[..]));
        drop(conn);
        assert_pdf(
            &bytes,
            &[
                note["number"].as_str().unwrap(),
                inv["number"].as_str().unwrap(),
            ],
        );
        notes.push(note);
    }
    assert_eq!(n(&notes[0]["total"]), 3_541);
    assert_eq!(
        n(&notes[0]["total"]) + n(&notes[1]["total"]),
        n(&inv["total"])
    );
    // Once all is refunded, each line has given back exactly its taxable value and taxes.
    for line in inv["lines"].as_array().unwrap() {
        let sku = &line["sku"];
        let given: Vec<&Value> = notes
            .iter()
            .flat_map(|note| note["lines"].as_array().unwrap())
            .filter(|l| l["sku"] == *sku)
            .collect();
        let total = |key: &str| given.iter().map(|l| n(&l[key])).sum::<i64>();
        assert_eq!(total("taxable_amount"), n(&line["taxable_amount"]), "{sku}");
        assert_eq!(total("tax"), n(&line["tax"]), "{sku}");
        for tax in line["tax_lines"].as_array().unwrap() {
            let back: i64 = given
                .iter()
                .flat_map(|l| l["tax_lines"].as_array().unwrap())
                .filter(|t| t["name"] == tax["name"])
                .map(|t| n(&t["amount"]))
                .sum();
            assert_eq!(back, n(&tax["amount"]), "{sku} {}", tax["name"]);
        }
    }
    assert_eq!(app.order(id).await["status"], "refunded");
    app.finish().await;
}

async fn documents_do_not_change_after_the_settings_do(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let order = confirmed_order(&app, "KA").await;
    let id = order["id"].as_str().unwrap();
    let r = refund(&app, id, Some(5_000)).await;
    let note_path = format!("/v1/refunds/{}/credit_note", r["id"].as_str().unwrap());
    let before = (invoice(&app, id).await, get(&app, &note_path).await.1);
    let pdf_before = pdf(&app, &format!("/v1/orders/{id}/invoice.pdf")).await;
    put(
        &app,
        "/v1/settings/tax",
        json!({"origin": {"country": "IN", "region": "MH"}, "prices_include_tax": true,
               "legal_name": "Another Name Ltd",
               "address": "Elsewhere"}),
    )
    .await;
    put(
        &app,
        "/v1/products/TEE-1",
        json!({"name": "Renamed Tee", "price": {"amount": 1, "currency": "INR"}}),
    )
    .await;
    put(
        &app,
        "/v1/tax_codes/apparel",
        json!({"hsn": "9999", "rates": [{"country": "IN", "rate_bps": 500}]}),
    )
    .await;
    let after = (invoice(&app, id).await, get(&app, &note_path).await.1);
    assert_eq!(before, after);
    assert_eq!(after.0["seller"]["legal_name"], "Asha Textiles Pvt Ltd");
    assert_eq!(after.0["seller"]["gstin"], "29ABCDE1234F1ZW");
    assert!(after.0["lines"].to_string().contains("Cotton Tee"));
    assert_eq!(
        pdf_before,
        pdf(&app, &format!("/v1/orders/{id}/invoice.pdf")).await
    );
    app.finish().await;
}

async fn a_refund_without_a_credit_note_answers_409(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    shop(&app).await;
    let order = confirmed_order(&app, "KA").await;
    let order_id = till::ids::OrderId::from(order["id"].as_str().unwrap());
    // Money Till gives back on its own (a duplicate payment) is not on the invoice.
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    let payment = till::payments::store::for_order(&mut conn, &order_id)
        .await
        .unwrap()
        .remove(0);
    let own = till::payments::Refund::pending(&payment, 100, "duplicate_payment");
    till::payments::store::insert_refund(&mut conn, &own, app.state().now_ms())
        .await
        .unwrap();
    drop(conn);
    let path = format!("/v1/refunds/{}/credit_note", own.id);
    assert_error(&get(&app, &path).await, 409, "invoice_not_issued");
    assert_error(
        &get(&app, &format!("{path}.pdf")).await,
        409,
        "invoice_not_issued",
    );
    till::checkout::process_refund(app.state(), &own.id)
        .await
        .unwrap();
    assert_error(&get(&app, &path).await, 409, "invoice_not_issued");
    assert_error(
        &get(&app, "/v1/refunds/re_nope/credit_note").await,
        404,
        "not_found",
    );
    // The made-up refund goes again, so the invariants see the order as it really was.
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    sqlx::query("DELETE FROM refunds WHERE id = $1")
        .bind(own.id.as_str())
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    app.finish().await;
}

/// An order confirmed before invoices were kept as documents: its invoice is built from
/// the order as stored when first asked for, then kept.
async fn an_order_numbered_before_documents_gets_its_invoice_built_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    shop(&app).await;
    let order = confirmed_order(&app, "KA").await;
    let id = order["id"].as_str().unwrap();
    let issued = invoice(&app, id).await;
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    sqlx::query("DELETE FROM documents WHERE order_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let rebuilt = invoice(&app, id).await;
    let mut expected = issued.clone();
    expected["issued_at"] = rebuilt["issued_at"].clone();
    assert_eq!(rebuilt, expected);
    put(
        &app,
        "/v1/products/CAP-1",
        json!({"name": "Renamed Cap", "price": {"amount": 1, "currency": "INR"}}),
    )
    .await;
    assert_eq!(invoice(&app, id).await, rebuilt, "kept once built");
    // `till verify` notices an invoice that is not its order's.
    let renumber = "UPDATE documents SET number = $1 WHERE order_id = $2";
    for number in ["INV/2026-27/999999", rebuilt["number"].as_str().unwrap()] {
        let mut conn = app.state().db.pool.acquire().await.unwrap();
        sqlx::query(renumber)
            .bind(number)
            .bind(id)
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        let report = till::verify::check(&app.state().db).await.unwrap();
        let broken = report
            .render()
            .contains("FAIL an issued invoice is its order's");
        assert_eq!(broken, number.ends_with("999999"), "{}", report.render());
    }
    app.finish().await;
}
