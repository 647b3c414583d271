//! What each customer email says: composed when its event is queued, from the event and the
//! order as stored, as a text part and an HTML part that say the same thing. Amounts are
//! integer minor units formatted as people read them (`₹1,234.50`); every text a customer or
//! merchant wrote (names, product names) is escaped in the HTML.

use serde::Deserialize;
use sqlx::AnyConnection;

use crate::documents;
use crate::error::{corrupt, Result};
use crate::ids::{OrderId, RefundId};
use crate::inventory;
use crate::mail::escape_html;
use crate::money::Currency;
use crate::notify::{Event, Type};
use crate::orders::{self, OrderRecord};

/// The event types a customer is mailed about.
pub const MAILED: [Type; 4] = [
    Type::OrderConfirmed,
    Type::PaymentFailed,
    Type::OrderExpired,
    Type::RefundSucceeded,
];

/// One event's message, ready to queue.
pub struct Composed {
    pub order_id: String,
    /// The refund of a `refund.succeeded` (its credit note is attached when sent).
    pub refund_id: Option<String>,
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The fields of an event's object the messages need besides its order (`Event::order_id`).
#[derive(Deserialize)]
struct About {
    id: String,
    amount: Option<i64>,
    failure_code: Option<String>,
    /// On an order's own events, whom the order is for, as stored (it never changes).
    customer: Option<orders::Customer>,
}

impl About {
    /// Whether the event's object is the order and names no one to mail: then there is
    /// nothing to read.
    fn order_without_email(&self, kind: Type) -> bool {
        matches!(kind, Type::OrderConfirmed | Type::OrderExpired)
            && self
                .customer
                .as_ref()
                .and_then(|c| c.email.as_deref())
                .is_none_or(|e| e.trim().is_empty())
    }
}

/// The message for `event`, or `None` when it mails nobody (another type, an order without
/// a customer email). Read in the transaction that queues it.
pub async fn compose(tx: &mut AnyConnection, event: &Event) -> Result<Option<Composed>> {
    if !MAILED.contains(&event.kind) {
        return Ok(None);
    }
    let about: About =
        serde_json::from_str(event.data.get()).map_err(|_| corrupt("events.data", &event.id))?;
    if about.order_without_email(event.kind) {
        return Ok(None);
    }
    let order_id = event
        .order_id()
        .ok_or_else(|| corrupt("events.data", &event.id))?
        .to_string();
    let Some(order) = orders::record_view(tx, &order_id).await? else {
        tracing::warn!(event_id = %event.id, %order_id, "event names an order that is not stored; not mailed");
        return Ok(None);
    };
    let Some(recipient) = order
        .customer
        .as_ref()
        .and_then(|c| c.email.clone())
        .filter(|e| !e.trim().is_empty())
    else {
        return Ok(None);
    };
    let currency = Currency::parse(&order.currency)
        .ok_or_else(|| corrupt("orders.currency", &order.currency))?;
    let money = |minor: i64| documents::amount(minor, currency, true);
    let amount = money(about.amount.unwrap_or(order.total));
    let mut refund_id = None;
    let (subject, paragraphs) = match event.kind {
        Type::OrderConfirmed => {
            let invoice = documents::store::invoice(tx, &OrderId::from(order_id.as_str()))
                .await?
                .map(|doc| doc.number)
                .or_else(|| order.invoice_number.clone());
            match invoice {
                Some(number) => (
                    format!("Order {order_id} confirmed — invoice {number}"),
                    vec![
                        format!("Thank you: we have your payment and your order {order_id} is confirmed."),
                        format!("Your tax invoice {number} is attached."),
                    ],
                ),
                None => (
                    format!("Order {order_id} confirmed"),
                    vec![format!("Thank you: we have your payment and your order {order_id} is confirmed.")],
                ),
            }
        }
        Type::PaymentFailed => {
            let reason = about
                .failure_code
                .map(|code| format!(" ({})", code.replace('_', " ")))
                .unwrap_or_default();
            (
                format!("Payment for order {order_id} failed"),
                vec![format!(
                    "Your payment of {amount} for order {order_id} did not go through{reason}, so the order is not confirmed."
                )],
            )
        }
        Type::OrderExpired => (
            format!("Order {order_id} expired"),
            vec![format!(
                "Your order {order_id} was not paid in time, so the items held for it were released. You are welcome to order again."
            )],
        ),
        _ => {
            let note = documents::store::credit_note(tx, &RefundId::from(about.id.as_str()))
                .await?
                .map(|doc| doc.number);
            refund_id = Some(about.id.clone());
            let mut said = vec![format!(
                "We have refunded {amount} of your order {order_id} to the way you paid."
            )];
            let subject = match note {
                Some(number) => {
                    said.push(format!("Your credit note {number} is attached."));
                    format!("Refund of {amount} for order {order_id} — credit note {number}")
                }
                None => format!("Refund of {amount} for order {order_id}"),
            };
            (subject, said)
        }
    };
    let body = Body {
        greeting: match order.customer.as_ref().and_then(|c| c.name.as_deref()) {
            Some(name) if !name.trim().is_empty() => format!("Hello {name},"),
            _ => "Hello,".to_string(),
        },
        paragraphs,
        order_id: order_id.clone(),
        rows: rows(tx, &order, &money).await?,
        totals: totals(&order, &money),
    };
    Ok(Some(Composed {
        order_id,
        refund_id,
        recipient,
        subject,
        text: body.text(),
        html: body.html(),
    }))
}

/// What a message says, before it is written as text or HTML.
struct Body {
    greeting: String,
    paragraphs: Vec<String>,
    order_id: String,
    /// Each line of the order: what, how many, the amount.
    rows: Vec<(String, i64, String)>,
    /// Subtotal, discount, tax, total.
    totals: Vec<(&'static str, String)>,
}

async fn rows(
    tx: &mut AnyConnection,
    order: &OrderRecord,
    money: &impl Fn(i64) -> String,
) -> Result<Vec<(String, i64, String)>> {
    let mut rows = Vec::with_capacity(order.items.len());
    for line in &order.items {
        let sku = line.sku.as_str();
        let what = match inventory::store::get_product(tx, sku).await? {
            Some(product) => format!("{} ({sku})", product.name),
            None => sku.to_string(),
        };
        rows.push((what, line.qty, money(line.amount)));
    }
    Ok(rows)
}

fn totals(order: &OrderRecord, money: &impl Fn(i64) -> String) -> Vec<(&'static str, String)> {
    let mut totals = vec![("Subtotal", money(order.subtotal))];
    if order.discount != 0 {
        totals.push(("Discount", money(-order.discount)));
    }
    if order.tax != 0 {
        totals.push(("Tax", money(order.tax)));
    }
    totals.push(("Total", money(order.total)));
    totals
}

impl Body {
    fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.greeting);
        for p in &self.paragraphs {
            out += &format!("{p}\n\n");
        }
        out += &format!("Order {}\n", self.order_id);
        for (what, qty, amount) in &self.rows {
            out += &format!("  {qty} × {what}: {amount}\n");
        }
        for (label, amount) in &self.totals {
            out += &format!("  {label}: {amount}\n");
        }
        out
    }

    fn html(&self) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n<p>{}</p>\n",
            escape_html(&self.greeting)
        );
        for p in &self.paragraphs {
            out += &format!("<p>{}</p>\n", escape_html(p));
        }
        out += &format!(
            "<table cellpadding=\"4\">\n<tr><th align=\"left\">Order {}</th><th align=\"right\">Qty</th><th align=\"right\">Amount</th></tr>\n",
            escape_html(&self.order_id)
        );
        for (what, qty, amount) in &self.rows {
            out += &format!(
                "<tr><td>{}</td><td align=\"right\">{qty}</td><td align=\"right\">{}</td></tr>\n",
                escape_html(what),
                escape_html(amount)
            );
        }
        for (label, amount) in &self.totals {
            out += &format!(
                "<tr><td colspan=\"2\">{label}</td><td align=\"right\">{}</td></tr>\n",
                escape_html(amount)
            );
        }
        out + "</table>\n</body></html>\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_order_event_naming_no_email_is_skipped_unread() {
        let about = |data: &str| serde_json::from_str::<About>(data).unwrap();
        let no_one = about(r#"{"id": "ord_1", "customer": null}"#);
        let blank = about(r#"{"id": "ord_1", "customer": {"id": "u_1", "email": " "}}"#);
        let asha = about(r#"{"id": "ord_1", "customer": {"email": "asha@example.com"}}"#);
        let payment = about(r#"{"id": "pay_1", "amount": 100, "failure_code": "card_declined"}"#);
        for kind in [Type::OrderConfirmed, Type::OrderExpired] {
            assert!(no_one.order_without_email(kind));
            assert!(blank.order_without_email(kind));
            assert!(!asha.order_without_email(kind));
        }
        // A payment's or refund's event does not carry the order's customer: it is read.
        assert!(!payment.order_without_email(Type::PaymentFailed));
        assert!(!no_one.order_without_email(Type::RefundSucceeded));
    }

    #[test]
    fn text_and_html_say_the_same_and_html_is_escaped() {
        let body = Body {
            greeting: "Hello <Asha>,".into(),
            paragraphs: vec!["Your order ord_1 is confirmed.".into()],
            order_id: "ord_1".into(),
            rows: vec![("Tee & Cap (TEE-1)".into(), 2, "₹1,998.00".into())],
            totals: vec![
                ("Subtotal", "₹1,998.00".into()),
                ("Total", "₹2,357.64".into()),
            ],
        };
        let text = body.text();
        assert!(text.starts_with("Hello <Asha>,\n\nYour order ord_1 is confirmed.\n\n"));
        assert!(text.contains("  2 × Tee & Cap (TEE-1): ₹1,998.00\n"));
        assert!(text.contains("  Total: ₹2,357.64\n"));
        let html = body.html();
        assert!(html.contains("<p>Hello &lt;Asha&gt;,</p>"));
        assert!(html.contains("<td>Tee &amp; Cap (TEE-1)</td><td align=\"right\">2</td>"));
        assert!(html.contains("<td colspan=\"2\">Total</td><td align=\"right\">₹2,357.64</td>"));
        assert!(!html.contains("<Asha>"));
    }
}
