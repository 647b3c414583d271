//! Orders: the order record, its items, its state machine and its JSON view. Its SQL is
//! in `store.rs`.
//!
//! Status changes only through `store::transition`, a compare-and-set on the current
//! status, so a webhook and the expiry sweeper racing on one order cannot both win.

pub mod store;

use serde_json::Value;

use crate::error::{corrupt, Error, Result};
use crate::ids::{OrderId, PaymentId, Sku};
use crate::money::{Currency, Money, TaxLine};

mod view;
pub use view::{record_of_new, record_view, Address, Customer, OrderRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Cancelled,
    Expired,
    Refunded,
    PartiallyRefunded,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Confirmed,
        Status::Cancelled,
        Status::Expired,
        Status::Refunded,
        Status::PartiallyRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Refunded => "refunded",
            Status::PartiallyRefunded => "partially_refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The legal moves. A cancelled order stays cancelled (a customer's cancel and a failed
    /// payment are final); an expired one may still be confirmed, by money captured for an
    /// attempt that was in flight when its hold ran out (see `checkout::finalize::keep_money`).
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Confirmed | Cancelled | Expired)
                | (Expired, Confirmed)
                | (Confirmed | PartiallyRefunded, PartiallyRefunded | Refunded)
        )
    }

    /// Paid for: the order's stock has left the warehouse.
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            Status::Confirmed | Status::Refunded | Status::PartiallyRefunded
        )
    }
}

/// India's financial year (1 April – 31 March, in Indian Standard Time) of a moment, as
/// invoice series name it: `2026-27`.
pub fn financial_year(ms: i64) -> String {
    const IST_OFFSET_MS: i64 = (5 * 60 + 30) * 60 * 1000;
    let date = crate::clock::rfc3339(ms + IST_OFFSET_MS);
    let (year, month): (i64, i64) = (
        date[..4].parse().unwrap_or_default(),
        date[5..7].parse().unwrap_or_default(),
    );
    let start = if month >= 4 { year } else { year - 1 };
    format!("{start}-{:02}", (start + 1) % 100)
}

/// The `n`-th invoice of a financial year: `INV/2026-27/000001`.
pub fn invoice_number(year: &str, n: i64) -> String {
    format!("INV/{year}/{n:06}")
}

/// A stored status Till does not know is corrupt data, never a default.
impl TryFrom<&str> for Status {
    type Error = Error;
    fn try_from(s: &str) -> Result<Status> {
        Status::parse(s).ok_or_else(|| corrupt("orders.status", s))
    }
}

/// Why an order stopped before it was paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    PaymentFailed,
    Customer,
    Expired,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::PaymentFailed => "payment_failed",
            CancelReason::Customer => "customer",
            CancelReason::Expired => "expired",
        }
    }
}

/// The columns other modules need to decide what to do with an order.
#[derive(Clone, Debug)]
pub struct OrderHead {
    pub id: OrderId,
    pub status: Status,
    pub total: Money,
    pub expires_at: i64,
    pub secret_hash: String,
    pub fingerprint: Option<String>,
    /// The payment the order was confirmed with; the only one of its payments Till keeps.
    pub paid_by: Option<PaymentId>,
    /// The coupon the order was priced with; it holds a use of it while pending.
    pub coupon: Option<String>,
}

/// The order a client secret (`{order id}_secret_{random}`) belongs to, when it is that
/// order's: its hash compared in constant time with the one stored. Anything else is `None`,
/// so a caller cannot tell a wrong secret from a missing order.
pub async fn secret_holder(
    conn: &mut sqlx::AnyConnection,
    secret: &str,
) -> Result<Option<OrderHead>> {
    let Some((order_id, _)) = secret.rsplit_once("_secret_") else {
        return Ok(None);
    };
    let Some(head) = store::head(conn, &OrderId::from(order_id)).await? else {
        return Ok(None);
    };
    let hash = crate::ids::sha256_hex(secret.as_bytes());
    Ok(crate::ids::constant_time_eq(hash.as_bytes(), head.secret_hash.as_bytes()).then_some(head))
}

/// A new order, priced, before it is written.
pub struct NewOrder<'a> {
    pub id: &'a OrderId,
    pub currency: Currency,
    pub lines: &'a [Line],
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub customer: Option<Value>,
    /// `customer.id`: what `TILL_MAX_PENDING_PER_CUSTOMER` counts by.
    pub customer_id: Option<&'a str>,
    pub ship_to: Option<Value>,
    /// The lines' taxes summed by name and rate.
    pub tax_lines: &'a [TaxLine],
    pub coupon: Option<&'a str>,
    pub secret_hash: &'a str,
    pub fingerprint: Option<&'a str>,
    pub expires_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = OrderItem)]
pub struct Line {
    #[schema(value_type = String)]
    pub sku: Sku,
    pub qty: i64,
    /// Minor units.
    pub unit_amount: i64,
    /// `unit_amount × qty`, minor units.
    pub amount: i64,
    /// The coupon's share of this line, minor units; absent when 0.
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub discount: i64,
    /// The HSN code of the product's tax code; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub hsn: Option<String>,
    /// This line's tax, minor units: the sum of its `tax_lines`; absent when 0.
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub tax: i64,
    /// Absent when the line pays no tax.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub tax_lines: Vec<TaxLine>,
}

/// An item without a discount or tax reads as docs/api.md's plain checkout example.
fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    #[test]
    fn invoices_are_numbered_per_indian_financial_year() {
        use super::{financial_year, invoice_number};
        use crate::clock::parse_rfc3339;
        let at = |t: &str| financial_year(parse_rfc3339(t).unwrap());
        assert_eq!(at("2026-11-29T04:00:00Z"), "2026-27");
        // 31 March 23:59:59 and 1 April 00:00 in India.
        assert_eq!(at("2027-03-31T18:29:59Z"), "2026-27");
        assert_eq!(at("2027-03-31T18:30:00Z"), "2027-28");
        assert_eq!(at("2026-04-01T00:00:00+05:30"), "2026-27");
        assert_eq!(at("2099-06-01T00:00:00Z"), "2099-00");
        assert_eq!(invoice_number("2026-27", 1), "INV/2026-27/000001");
        assert_eq!(invoice_number("2026-27", 1_234_567), "INV/2026-27/1234567");
    }

    #[test]
    fn terminal_states_are_final() {
        for to in Status::ALL {
            assert!(!Refunded.can_become(to), "refunded -> {to:?}");
        }
        assert!(!Confirmed.can_become(Pending));
        assert!(!Confirmed.can_become(Cancelled));
        assert!(!Cancelled.can_become(Expired));
        assert!(!Expired.can_become(Pending));
        for to in Status::ALL {
            assert!(
                !Cancelled.can_become(to),
                "a cancel is final: cancelled -> {to:?}"
            );
        }
    }

    /// Every move, legal or not, against the table of the rules: exhaustive, so a change to
    /// `can_become` that the table does not share fails here.
    #[test]
    fn every_move_is_as_the_rules_say() {
        let legal = [
            (Pending, Confirmed),
            (Pending, Cancelled),
            (Pending, Expired),
            // Captured money for an attempt in flight when the hold ran out.
            (Expired, Confirmed),
            (Confirmed, PartiallyRefunded),
            (Confirmed, Refunded),
            (PartiallyRefunded, PartiallyRefunded),
            (PartiallyRefunded, Refunded),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn legal_moves() {
        assert!(Pending.can_become(Confirmed));
        assert!(Pending.can_become(Expired));
        assert!(Expired.can_become(Confirmed));
        assert!(Confirmed.can_become(PartiallyRefunded));
        assert!(PartiallyRefunded.can_become(Refunded));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
