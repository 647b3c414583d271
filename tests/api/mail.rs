//! Customer email: one message per `order.confirmed` (invoice attached), `payment.failed`,
//! `order.expired` and `refund.succeeded` (credit note attached), to a real SMTP server over
//! a socket (`smtp.rs`), exactly once however often and however concurrently the relay and
//! the sender run; a server that refuses for now is tried again, one that refuses for good
//! is not; without a server the messages are `.eml` files.

use futures::future::join_all;
use mail_parser::{Message, MessageParser, MimeHeaders};
use reqwest::Method;
use serde_json::{json, Value};
use till::Workers;

use crate::both;
use crate::helpers::{Backend, Outcomes, TestApp};
use crate::smtp::SmtpServer;

both!(
    each_mailed_event_reaches_the_customer_once,
    a_server_refusing_for_now_is_tried_again,
    a_server_refusing_for_good_is_not_tried_again,
    without_smtp_the_messages_are_eml_files
);

/// Till with its workers driven by hand, mailing through `server`, retrying quickly.
async fn app_mailing_to(b: Backend, server: &SmtpServer) -> TestApp {
    let url = server.url();
    TestApp::spawn_with(b, Workers::Manual, move |c| {
        c.smtp_url = Some(url);
        c.mail_retry_base_ms = 10;
        c.hold_ttl_secs = 60;
    })
    .await
}

/// The ids of the events of `kind`, oldest first.
async fn event_ids(app: &TestApp, kind: &str) -> Vec<String> {
    let (status, page) = app
        .call(Method::GET, &format!("/v1/events?type={kind}"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn parse(raw: &[u8]) -> Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("a message that parses")
}

/// The one attachment of `message`: its file name and bytes, checked to be a whole PDF.
fn pdf_attachment(message: &Message<'_>) -> (String, Vec<u8>) {
    let parts: Vec<_> = message.attachments().collect();
    assert_eq!(parts.len(), 1, "one attachment");
    let part = parts[0];
    let ctype = part.content_type().expect("attachment has a type");
    assert_eq!(
        (ctype.ctype(), ctype.subtype()),
        ("application", Some("pdf"))
    );
    let bytes = part.contents().to_vec();
    assert!(bytes.starts_with(b"%PDF-"), "a PDF header");
    let tail = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(32)..]).to_string();
    assert!(tail.contains("%%EOF"), "a PDF trailer: {tail:?}");
    (
        part.attachment_name().unwrap_or_default().to_string(),
        bytes,
    )
}

fn count(metrics: &str, state: &str) -> i64 {
    let prefix = format!("till_mail_messages{{state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
        .parse()
        .unwrap()
}

async fn each_mailed_event_reaches_the_customer_once(b: Backend) {
    let server = SmtpServer::start().await;
    let app = app_mailing_to(b, &server).await;
    let Outcomes {
        paid,
        declined,
        expired,
        ..
    } = app.one_of_each_outcome().await;
    // An order without a customer email mails nobody.
    let (status, anonymous) = app
        .call(
            Method::POST,
            "/v1/orders",
            Some(json!({"items": [{"sku": "TEE-1", "qty": 1}]})),
        )
        .await;
    assert_eq!(status, 201, "{anonymous}");
    let anonymous = anonymous["id"].as_str().unwrap().to_string();
    assert_eq!(app.pay(&anonymous, "card", "pm_card_visa").await.0, 201);

    // The relay and the sender run again and again, and several at once.
    for _ in 0..3 {
        app.run_workers().await;
        let passes = (0..3).map(|_| till::relay::run_once(app.state()));
        for pass in join_all(passes).await {
            pass.expect("relay pass");
        }
    }

    let received = server.received();
    assert_eq!(received.len(), 4, "one message per mailed event");
    let mut by_id = std::collections::BTreeMap::new();
    for r in &received {
        assert_eq!(r.to, ["asha@example.com"]);
        assert_eq!(r.from, "orders@localhost");
        let id = parse(&r.data).message_id().unwrap().to_string();
        assert!(
            by_id.insert(id, r.data.clone()).is_none(),
            "a message sent twice"
        );
    }
    let message_of = |kind_ids: &[String]| -> Vec<u8> {
        assert_eq!(kind_ids.len(), 1);
        by_id
            .get(&format!("{}@till", kind_ids[0]))
            .unwrap_or_else(|| panic!("no message for {}", kind_ids[0]))
            .clone()
    };

    let confirmed_raw = message_of(&event_ids(&app, "order.confirmed").await[..1]);
    let confirmed = parse(&confirmed_raw);
    let invoice = app.order(&paid).await["invoice_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        confirmed.subject(),
        Some(format!("Order {paid} confirmed — invoice {invoice}").as_str())
    );
    assert_eq!(
        confirmed
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("asha@example.com")
    );
    let text = confirmed.body_text(0).unwrap();
    assert!(
        text.contains(&format!("Your tax invoice {invoice} is attached.")),
        "{text}"
    );
    assert!(
        text.contains("2 × Product TEE-1 (TEE-1): ₹998.00"),
        "{text}"
    );
    let html = confirmed.body_html(0).unwrap();
    assert!(html.contains("<table"), "{html}");
    assert!(html.contains("₹998.00"), "{html}");
    let (name, _) = pdf_attachment(&confirmed);
    assert_eq!(name, format!("invoice-{}.pdf", invoice.replace('/', "-")));

    let refunded_raw = message_of(&event_ids(&app, "refund.succeeded").await);
    let refunded = parse(&refunded_raw);
    let subject = refunded.subject().unwrap();
    assert!(
        subject.starts_with(&format!(
            "Refund of ₹100.00 for order {paid} — credit note CN/"
        )),
        "{subject}"
    );
    let (name, _) = pdf_attachment(&refunded);
    assert!(name.starts_with("credit-note-CN-"), "{name}");

    let failed_raw = message_of(&event_ids(&app, "payment.failed").await);
    let failed = parse(&failed_raw);
    assert_eq!(
        failed.subject(),
        Some(format!("Payment for order {declined} failed").as_str())
    );
    assert_eq!(failed.attachments().count(), 0);
    assert!(failed.body_text(0).unwrap().contains("₹499.00"));

    let expired_raw = message_of(&event_ids(&app, "order.expired").await);
    let expired_message = parse(&expired_raw);
    assert_eq!(
        expired_message.subject(),
        Some(format!("Order {expired} expired").as_str())
    );

    // Each message sent is on its order's timeline, once.
    let (status, timeline) = app
        .call(Method::GET, &format!("/v1/orders/{paid}/timeline"), None)
        .await;
    assert_eq!(status, 200, "{timeline}");
    let mut emails: Vec<&Value> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["kind"] == "email.sent")
        .map(|step| &step["detail"])
        .collect();
    // Sent in one batch, in no particular order.
    emails.sort_by_key(|detail| detail["event"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        emails,
        [
            &json!({"event": "order.confirmed", "to": "asha@example.com"}),
            &json!({"event": "refund.succeeded", "to": "asha@example.com"})
        ]
    );

    let metrics = app.metrics_text().await;
    assert_eq!(
        (
            count(&metrics, "pending"),
            count(&metrics, "sent"),
            count(&metrics, "failed")
        ),
        (0, 4, 0)
    );
    app.finish().await;
}

/// Runs the workers until `done` holds (retries come after a wait of a few milliseconds).
async fn run_until(app: &TestApp, done: impl Fn() -> bool) {
    for _ in 0..300 {
        app.run_workers().await;
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the workers never got there");
}

async fn confirmed_order(app: &TestApp) -> (String, Value) {
    app.stocked("TEE-1", 49_900, 10).await;
    let paid = app.new_order("TEE-1", 1).await;
    assert_eq!(app.pay(&paid, "card", "pm_card_visa").await.0, 201);
    let event = event_ids(app, "order.confirmed").await.remove(0);
    (event, app.order(&paid).await)
}

async fn stored(app: &TestApp, event: &str) -> till::mail::store::Row {
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    till::mail::store::get(&mut conn, event)
        .await
        .unwrap()
        .expect("the message is queued")
}

async fn a_server_refusing_for_now_is_tried_again(b: Backend) {
    let server = SmtpServer::start().await;
    server.refuse(2, "451 4.3.0 mailbox busy, try later");
    let app = app_mailing_to(b, &server).await;
    let (event, _) = confirmed_order(&app).await;
    run_until(&app, || !server.received().is_empty()).await;
    for _ in 0..5 {
        app.run_workers().await;
    }
    assert_eq!(server.received().len(), 1, "delivered once");
    assert_eq!(server.attempts(), 3, "two refusals, then the delivery");
    let row = stored(&app, &event).await;
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 3));
    assert_eq!(row.last_error, None);
    app.finish().await;
}

async fn a_server_refusing_for_good_is_not_tried_again(b: Backend) {
    let server = SmtpServer::start().await;
    server.refuse(usize::MAX, "550 5.1.1 no such mailbox");
    let app = app_mailing_to(b, &server).await;
    let (event, _) = confirmed_order(&app).await;
    for _ in 0..5 {
        app.run_workers().await;
        app.clock.advance_ms(3_600_000);
    }
    assert_eq!(
        server.attempts(),
        1,
        "a permanent refusal is not tried again"
    );
    assert!(server.received().is_empty());
    let row = stored(&app, &event).await;
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 1));
    let error = row.last_error.unwrap();
    assert!(error.contains("550"), "{error}");
    let metrics = app.metrics_text().await;
    assert_eq!((count(&metrics, "sent"), count(&metrics, "failed")), (0, 1));
    app.finish().await;
}

async fn without_smtp_the_messages_are_eml_files(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    let (event, order) = confirmed_order(&app).await;
    app.run_workers().await;
    app.run_workers().await;
    let files: Vec<String> = std::fs::read_dir(&app.db.mail_dir)
        .expect("the mail directory was made")
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        files,
        [format!("{event}.eml")],
        "one file, no temporary left"
    );
    let raw = std::fs::read(app.db.mail_dir.join(format!("{event}.eml"))).unwrap();
    let message = parse(&raw);
    let invoice = order["invoice_number"].as_str().unwrap();
    assert_eq!(
        message.subject(),
        Some(
            format!(
                "Order {} confirmed — invoice {invoice}",
                order["id"].as_str().unwrap()
            )
            .as_str()
        )
    );
    assert_eq!(message.message_id(), Some(format!("{event}@till").as_str()));
    pdf_attachment(&message);
    assert_eq!(stored(&app, &event).await.state, "sent");
    app.finish().await;
}
