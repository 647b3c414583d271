//! The order's tax documents, put together from the order (`orders`), the seller's tax
//! settings (`pricing`), the products' names (`inventory`) and the refund (`payments`), and
//! kept by `documents`: the invoice, issued in the transaction that confirms the order, and
//! a credit note for each refund the merchant asked for, issued in the transaction that
//! records its success. Each is stored whole when issued and read back as it was.
//!
//! An order confirmed before documents were kept (it has an invoice number, no stored
//! invoice) gets its invoice built from what is stored the first time it is asked for,
//! dated when the order last changed, and stored then, so it too never changes after.

pub mod routes;

use sqlx::AnyConnection;

use crate::clock::{parse_rfc3339, rfc3339};
use crate::db::Script;
use crate::documents::store::{self as docs, NewDocument};
use crate::documents::{
    self, Buyer, CreditNoteDoc, CreditNoteLine, DocAddress, InvoiceDoc, InvoiceLine, Kind, Seller,
};
use crate::error::{corrupt, Error, Result};
use crate::ids::{OrderId, RefundId};
use crate::inventory;
use crate::money::{Currency, Money, TaxLine};
use crate::orders::{self, OrderRecord};
use crate::payments::{Refund, RefundShare};
use crate::pricing;

/// The order's invoice as issued; `None` while it has none (not confirmed yet).
pub async fn invoice_document(
    conn: &mut AnyConnection,
    order_id: &OrderId,
) -> Result<Option<InvoiceDoc>> {
    if let Some(doc) = docs::invoice(conn, order_id).await? {
        return Ok(Some(doc));
    }
    let Some(order) = orders::record_view(conn, order_id.as_str()).await? else {
        return Ok(None);
    };
    let Some(number) = order.invoice_number.clone() else {
        return Ok(None);
    };
    // Numbered before documents were kept: built now, stored, and from then on as stored.
    let issued_at = parse_rfc3339(&order.updated_at)
        .ok_or_else(|| corrupt("orders.updated_at", &order.updated_at))?;
    let doc = build_invoice(conn, order, number, issued_at).await?;
    let mut script = Script::new();
    store_invoice(&mut script, &doc, issued_at)?;
    script.run(conn).await?;
    docs::invoice(conn, order_id).await
}

/// The order's invoice as a PDF; `None` while it has none.
pub async fn invoice_pdf(conn: &mut AnyConnection, order_id: &OrderId) -> Result<Option<Vec<u8>>> {
    invoice_document(conn, order_id)
        .await?
        .map(|doc| documents::invoice_pdf(&doc))
        .transpose()
}

/// The refund's credit note as issued; `None` if it has none.
pub async fn credit_note_document(
    conn: &mut AnyConnection,
    refund_id: &RefundId,
) -> Result<Option<CreditNoteDoc>> {
    docs::credit_note(conn, refund_id).await
}

/// The refund's credit note as a PDF; `None` if it has none.
pub async fn credit_note_pdf(
    conn: &mut AnyConnection,
    refund_id: &RefundId,
) -> Result<Option<Vec<u8>>> {
    credit_note_document(conn, refund_id)
        .await?
        .map(|doc| documents::credit_note_pdf(&doc))
        .transpose()
}

/// The invoice of an order being confirmed, drawn up inside the confirming transaction
/// before its number is taken (all the reads); `issue_invoice` numbers and stores it.
pub async fn draft_invoice(
    tx: &mut AnyConnection,
    order: OrderRecord,
    now: i64,
) -> Result<InvoiceDoc> {
    build_invoice(tx, order, String::new(), now).await
}

/// Issues the drafted invoice as number `number` (from `orders::store::record_paid`): its
/// insert joins `writes`, which the confirming transaction runs before it commits. Returns
/// it, for an event that carries it to be written in that transaction too.
pub fn issue_invoice(
    writes: &mut Script,
    draft: InvoiceDoc,
    number: String,
    now: i64,
) -> Result<InvoiceDoc> {
    let doc = InvoiceDoc { number, ..draft };
    store_invoice(writes, &doc, now)?;
    Ok(doc)
}

fn store_invoice(writes: &mut Script, doc: &InvoiceDoc, issued_at: i64) -> Result<()> {
    let body = serde_json::to_string(doc).map_err(|e| Error::Internal(e.into()))?;
    docs::insert_into(
        writes,
        &NewDocument {
            kind: Kind::Invoice,
            number: &doc.number,
            order_id: &OrderId::from(doc.order_id.as_str()),
            refund_id: None,
            issued_at,
            body,
        },
    );
    Ok(())
}

/// The invoice of an order, from its record as stored and the seller's settings now.
async fn build_invoice(
    conn: &mut AnyConnection,
    order: OrderRecord,
    number: String,
    issued_at: i64,
) -> Result<InvoiceDoc> {
    let currency = Currency::parse(&order.currency)
        .ok_or_else(|| corrupt("orders.currency", &order.currency))?;
    let settings = pricing::store::get_tax_settings(conn).await?;
    // Prices included their tax when the tax is inside the total (`subtotal − discount`).
    let prices_include_tax = order.tax != 0 && order.total == order.subtotal - order.discount;
    let mut lines = Vec::with_capacity(order.items.len());
    for item in order.items {
        let name = inventory::store::get_product(conn, item.sku.as_str())
            .await?
            .map_or_else(|| item.sku.as_str().to_string(), |p| p.name);
        let taxable_amount =
            item.amount - item.discount - if prices_include_tax { item.tax } else { 0 };
        lines.push(InvoiceLine {
            sku: item.sku.as_str().to_string(),
            name,
            hsn: item.hsn,
            qty: item.qty,
            unit_amount: item.unit_amount,
            amount: item.amount,
            discount: item.discount,
            taxable_amount,
            tax: item.tax,
            tax_lines: item.tax_lines,
            total: taxable_amount + item.tax,
        });
    }
    let origin = settings.as_ref().map(|s| &s.origin);
    let place_of_supply = match &order.ship_to {
        Some(to) if to.country == "IN" => to.region.clone().or(Some(to.country.clone())),
        Some(to) => Some(to.country.clone()),
        None => origin.and_then(|o| o.region.clone()),
    };
    let seller = Seller {
        gstin: settings.as_ref().and_then(|s| s.gstin.clone()),
        legal_name: settings.as_ref().and_then(|s| s.legal_name.clone()),
        address: settings.as_ref().and_then(|s| s.address.clone()),
        country: origin.map(|o| o.country.clone()),
        state: origin.and_then(|o| o.region.clone()),
    };
    let customer = order.customer.as_ref();
    let buyer = Buyer {
        id: customer.and_then(|c| c.id.clone()),
        name: customer.and_then(|c| c.name.clone()),
        email: customer.and_then(|c| c.email.clone()),
        phone: customer.and_then(|c| c.phone.clone()),
        gstin: customer.and_then(|c| c.gstin.clone()),
        ship_to: order.ship_to.map(|a| DocAddress {
            country: a.country,
            region: a.region,
            postal_code: a.postal_code,
            city: a.city,
            line1: a.line1,
            line2: a.line2,
        }),
    };
    let taxable_amount = lines.iter().map(|l| l.taxable_amount).sum();
    if taxable_amount + order.tax != order.total {
        return Err(corrupt("orders.total", &order.total.to_string()));
    }
    Ok(InvoiceDoc {
        object: "invoice".into(),
        number,
        issued_at: rfc3339(issued_at),
        order_id: order.id,
        currency: order.currency,
        seller,
        buyer,
        place_of_supply,
        prices_include_tax,
        lines,
        subtotal: order.subtotal,
        discount: order.discount,
        taxable_amount,
        tax: order.tax,
        tax_lines: order.tax_lines,
        total: order.total,
        total_in_words: documents::amount_in_words(Money::new(order.total, currency)),
    })
}

/// Issues the credit note of a refund that succeeded, inside that transaction, when the
/// refund is of an invoiced order and carries its share of the order's taxable value and
/// taxes (a refund the merchant asked for). Returns it, for an event to carry; `None` for a
/// refund that gets none.
pub async fn issue_credit_note(
    tx: &mut AnyConnection,
    refund: &Refund,
    now: i64,
) -> Result<Option<CreditNoteDoc>> {
    let Some(share) = &refund.share else {
        return Ok(None);
    };
    let Some(invoice) = invoice_document(tx, &refund.order_id).await? else {
        return Ok(None);
    };
    let earlier = docs::credit_notes_of_order(tx, &refund.order_id).await?;
    let lines = credit_lines(&invoice, &earlier, share);
    let taxable_amount: i64 = lines.iter().map(|l| l.taxable_amount).sum();
    let tax: i64 = lines.iter().map(|l| l.tax).sum();
    assert_eq!(
        taxable_amount + tax,
        refund.amount.minor,
        "credit note of {} does not add up to the refund",
        refund.id
    );
    let year = orders::financial_year(now);
    let n = docs::next_number(tx, &documents::credit_note_series(&year)).await?;
    let doc = CreditNoteDoc {
        object: "credit_note".into(),
        number: documents::credit_note_number(&year, n),
        issued_at: rfc3339(now),
        refund_id: refund.id.as_str().to_string(),
        order_id: invoice.order_id.clone(),
        invoice_number: invoice.number.clone(),
        invoice_issued_at: invoice.issued_at.clone(),
        currency: invoice.currency.clone(),
        seller: invoice.seller.clone(),
        buyer: invoice.buyer.clone(),
        place_of_supply: invoice.place_of_supply.clone(),
        lines,
        taxable_amount,
        tax,
        tax_lines: share.tax_lines.clone(),
        total: refund.amount.minor,
        total_in_words: documents::amount_in_words(refund.amount),
    };
    let body = serde_json::to_string(&doc).map_err(|e| Error::Internal(e.into()))?;
    docs::insert(
        tx,
        &NewDocument {
            kind: Kind::CreditNote,
            number: &doc.number,
            order_id: &refund.order_id,
            refund_id: Some(&refund.id),
            issued_at: now,
            body,
        },
    )
    .await?;
    Ok(Some(doc))
}

/// The refund's share of each invoice line: each part of the order (its taxable value, each
/// tax by name and rate) as the refund gave it back, spread over the lines in proportion to
/// what each line has left of that part after the earlier credit notes (largest remainder,
/// `pricing::refund::refund_shares`), so the lines add up to the refund exactly and, once
/// all is refunded, each line has given back exactly what it was. Lines with nothing given
/// back are left out.
fn credit_lines(
    invoice: &InvoiceDoc,
    earlier: &[CreditNoteDoc],
    share: &RefundShare,
) -> Vec<CreditNoteLine> {
    let taken = |sku: &str, part: &dyn Fn(&CreditNoteLine) -> i64| -> i64 {
        earlier
            .iter()
            .flat_map(|note| &note.lines)
            .filter(|l| l.sku == sku)
            .map(part)
            .sum()
    };
    let spread = |amount: i64,
                  of_line: &dyn Fn(&InvoiceLine) -> i64,
                  of_note: &dyn Fn(&CreditNoteLine) -> i64| {
        let parts: Vec<i64> = invoice.lines.iter().map(of_line).collect();
        let before: Vec<i64> = invoice
            .lines
            .iter()
            .map(|l| taken(&l.sku, of_note))
            .collect();
        pricing::refund::refund_shares(&parts, &before, amount)
    };
    let taxable = spread(share.taxable, &|l| l.taxable_amount, &|l| l.taxable_amount);
    let matching = |lines: &[TaxLine], t: &TaxLine| {
        lines
            .iter()
            .find(|k| k.name == t.name && k.rate_bps == t.rate_bps)
            .map_or(0, |k| k.amount)
    };
    let taxes: Vec<(TaxLine, Vec<i64>)> = share
        .tax_lines
        .iter()
        .map(|t| {
            let shares = spread(t.amount, &|l| matching(&l.tax_lines, t), &|l| {
                matching(&l.tax_lines, t)
            });
            (t.clone(), shares)
        })
        .collect();
    invoice
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let tax_lines: Vec<TaxLine> = taxes
                .iter()
                .filter(|(t, _)| {
                    line.tax_lines
                        .iter()
                        .any(|k| k.name == t.name && k.rate_bps == t.rate_bps)
                })
                .map(|(t, shares)| TaxLine {
                    amount: shares[i],
                    ..t.clone()
                })
                .collect();
            let tax = tax_lines.iter().map(|t| t.amount).sum();
            CreditNoteLine {
                sku: line.sku.clone(),
                name: line.name.clone(),
                hsn: line.hsn.clone(),
                taxable_amount: taxable[i],
                tax,
                tax_lines,
                total: taxable[i] + tax,
            }
        })
        .filter(|l| l.total != 0)
        .collect()
}
