//! What a tax invoice and a credit note show on paper, and where: the title and number,
//! seller and buyer, place of supply, one row per line (with its HSN code and each tax),
//! the totals, the total in words. Amounts as people read them: `₹1,23,456.78` (Indian
//! grouping) for rupees, `$1,234.56` and so on for the rest (`format.rs`).
//!
//! Over 400 lines: both documents are laid out from the same parts (header, parties, the
//! lines' table, totals, words), which stay beside the two layouts that use them.

use super::font::Style;
use super::format::{amount, date, place, tax_name};
use super::pdf::{Align, Layout, MARGIN, PAGE_WIDTH};
use super::{Buyer, CreditNoteDoc, InvoiceDoc, Seller};
use crate::error::{corrupt, Result};
use crate::money::{Currency, TaxLine};

const BODY: f32 = 9.0;
const SMALL: f32 = 7.5;
const GRAY: f32 = 0.35;
const RIGHT: f32 = PAGE_WIDTH - MARGIN;

/// A column of the lines' table.
struct Column {
    title: &'static str,
    width: f32,
    align: Align,
}

/// A row of the table: its cells and a second, smaller line (SKU and taxes).
struct Row {
    cells: Vec<String>,
    detail: String,
}

/// One document's content, in the order it is laid out.
struct Sheet<'a> {
    title: &'a str,
    number: &'a str,
    /// Number, dates, order…: label and value, on the right of the title.
    refs: Vec<(&'static str, String)>,
    seller: &'a Seller,
    buyer: &'a Buyer,
    columns: &'a [Column],
    rows: Vec<Row>,
    /// Label and amount above the total.
    figures: Vec<(String, i64)>,
    total: (&'static str, i64),
    total_in_words: &'a str,
    notes: Vec<&'static str>,
    currency: Currency,
}

/// The invoice as a PDF.
pub fn invoice(doc: &InvoiceDoc) -> Result<Vec<u8>> {
    let currency = currency(&doc.currency)?;
    let money = |minor: i64| amount(minor, currency, false);
    let columns = [
        col("#", 18.0, Align::Left),
        col("Item", 146.0, Align::Left),
        col("HSN", 42.0, Align::Left),
        col("Qty", 30.0, Align::Right),
        col("Rate", 58.0, Align::Right),
        col("Discount", 54.0, Align::Right),
        col("Taxable", 62.0, Align::Right),
        col("Tax", 56.0, Align::Right),
        col("Amount", 73.0, Align::Right),
    ];
    let rows = doc.lines.iter().enumerate().map(|(i, l)| {
        let figures = [l.unit_amount, l.discount, l.taxable_amount, l.tax, l.total];
        let mut cells = vec![
            (i + 1).to_string(),
            l.name.clone(),
            l.hsn.clone().unwrap_or_default(),
            l.qty.to_string(),
        ];
        cells.extend(figures.map(money));
        Row {
            cells,
            detail: detail(&l.sku, &l.tax_lines, currency),
        }
    });
    let mut figures = vec![("Subtotal".to_string(), doc.subtotal)];
    if doc.discount != 0 {
        figures.push(("Discount".to_string(), -doc.discount));
    }
    figures.push(("Taxable value".to_string(), doc.taxable_amount));
    figures.extend(doc.tax_lines.iter().map(|t| (tax_name(t), t.amount)));
    let mut notes = vec!["This is a computer-generated invoice."];
    if doc.prices_include_tax {
        notes.insert(0, "Prices include tax.");
    }
    render(Sheet {
        title: "TAX INVOICE",
        number: &doc.number,
        refs: vec![
            ("Invoice No.", doc.number.clone()),
            ("Date", date(&doc.issued_at)?),
            ("Order", doc.order_id.clone()),
            ("Place of supply", place(&doc.place_of_supply)),
        ],
        seller: &doc.seller,
        buyer: &doc.buyer,
        columns: &columns,
        rows: rows.collect(),
        figures,
        total: ("Total", doc.total),
        total_in_words: &doc.total_in_words,
        notes,
        currency,
    })
}

/// The credit note as a PDF.
pub fn credit_note(doc: &CreditNoteDoc) -> Result<Vec<u8>> {
    let currency = currency(&doc.currency)?;
    let money = |minor: i64| amount(minor, currency, false);
    let columns = [
        col("#", 18.0, Align::Left),
        col("Item", 220.0, Align::Left),
        col("HSN", 60.0, Align::Left),
        col("Taxable", 80.0, Align::Right),
        col("Tax", 80.0, Align::Right),
        col("Amount", 81.0, Align::Right),
    ];
    let rows = doc.lines.iter().enumerate().map(|(i, l)| {
        let mut cells = vec![
            (i + 1).to_string(),
            l.name.clone(),
            l.hsn.clone().unwrap_or_default(),
        ];
        cells.extend([l.taxable_amount, l.tax, l.total].map(money));
        Row {
            cells,
            detail: detail(&l.sku, &l.tax_lines, currency),
        }
    });
    let mut figures = vec![("Taxable value".to_string(), doc.taxable_amount)];
    figures.extend(doc.tax_lines.iter().map(|t| (tax_name(t), t.amount)));
    render(Sheet {
        title: "CREDIT NOTE",
        number: &doc.number,
        refs: vec![
            ("Credit Note No.", doc.number.clone()),
            ("Date", date(&doc.issued_at)?),
            ("Against invoice", doc.invoice_number.clone()),
            ("Invoice date", date(&doc.invoice_issued_at)?),
            ("Order", doc.order_id.clone()),
            ("Refund", doc.refund_id.clone()),
            ("Place of supply", place(&doc.place_of_supply)),
        ],
        seller: &doc.seller,
        buyer: &doc.buyer,
        columns: &columns,
        rows: rows.collect(),
        figures,
        total: ("Total credited", doc.total),
        total_in_words: &doc.total_in_words,
        notes: vec!["This is a computer-generated credit note."],
        currency,
    })
}

fn render(sheet: Sheet) -> Result<Vec<u8>> {
    let mut page = Layout::new()?;
    header(&mut page, sheet.title, &sheet.refs);
    parties(&mut page, sheet.seller, sheet.buyer);
    table(&mut page, sheet.columns, sheet.rows, sheet.currency);
    summary(&mut page, &sheet.figures, sheet.total, sheet.currency);
    words(&mut page, sheet.total_in_words);
    for text in sheet.notes {
        note(&mut page, text);
    }
    page.finish(sheet.number)
}

fn col(title: &'static str, width: f32, align: Align) -> Column {
    Column {
        title,
        width,
        align,
    }
}

fn currency(code: &str) -> Result<Currency> {
    Currency::parse(code).ok_or_else(|| corrupt("documents.body currency", code))
}

/// The title on the left, the document's references on the right.
fn header(page: &mut Layout, title: &str, refs: &[(&str, String)]) {
    let top = page.y;
    page.text(
        Style::Bold,
        18.0,
        0.0,
        (MARGIN, top - 18.0),
        Align::Left,
        260.0,
        title,
    );
    let mut y = top - BODY;
    for (label, value) in refs {
        page.text(
            Style::Regular,
            BODY,
            GRAY,
            (RIGHT - 150.0, y),
            Align::Right,
            110.0,
            label,
        );
        page.text(
            Style::Bold,
            BODY,
            0.0,
            (RIGHT, y),
            Align::Right,
            145.0,
            value,
        );
        y -= BODY + 3.0;
    }
    page.y = y.min(top - 26.0) - 6.0;
    page.rule(MARGIN, RIGHT);
}

/// Seller on the left, buyer on the right, each as many lines as it needs.
fn parties(page: &mut Layout, seller: &Seller, buyer: &Buyer) {
    let half = (RIGHT - MARGIN) / 2.0;
    let mut left = vec![(Style::Bold, seller.legal_name.clone().unwrap_or_default())];
    left.extend(wrapped(page, seller.address.as_deref(), half - 10.0));
    left.extend(labelled("GSTIN", seller.gstin.as_deref()));
    left.extend(labelled("State", seller.state.as_deref()));
    let mut right = vec![(
        Style::Bold,
        buyer
            .name
            .clone()
            .or(buyer.email.clone())
            .unwrap_or_default(),
    )];
    if buyer.name.is_some() {
        right.extend(buyer.email.clone().map(|e| (Style::Regular, e)));
    }
    right.extend(buyer.phone.clone().map(|p| (Style::Regular, p)));
    if let Some(a) = &buyer.ship_to {
        let street = [&a.line1, &a.line2, &a.city]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        right.extend(wrapped(page, Some(&street), half - 10.0));
        let place = [
            a.region.as_deref(),
            a.postal_code.as_deref(),
            Some(a.country.as_str()),
        ];
        right.push((
            Style::Regular,
            place.into_iter().flatten().collect::<Vec<_>>().join(" "),
        ));
    }
    right.extend(labelled("GSTIN", buyer.gstin.as_deref()));
    let y0 = page.y - 14.0;
    page.text(
        Style::Regular,
        SMALL,
        GRAY,
        (MARGIN, y0),
        Align::Left,
        half,
        "SOLD BY",
    );
    page.text(
        Style::Regular,
        SMALL,
        GRAY,
        (MARGIN + half, y0),
        Align::Left,
        half,
        "BILL TO / SHIP TO",
    );
    let mut lowest = y0;
    for (x, lines) in [(MARGIN, &left), (MARGIN + half, &right)] {
        let mut y = y0 - BODY - 4.0;
        for (style, text) in lines.iter().filter(|(_, t)| !t.is_empty()) {
            page.text(*style, BODY, 0.0, (x, y), Align::Left, half - 10.0, text);
            y -= BODY + 3.0;
        }
        lowest = lowest.min(y);
    }
    page.y = lowest - 4.0;
    page.rule(MARGIN, RIGHT);
}

fn wrapped(page: &Layout, text: Option<&str>, width: f32) -> Vec<(Style, String)> {
    let text = text.unwrap_or_default();
    page.wrap(Style::Regular, BODY, width, text)
        .into_iter()
        .map(|l| (Style::Regular, l))
        .collect()
}

fn labelled(label: &str, value: Option<&str>) -> Option<(Style, String)> {
    value.map(|v| (Style::Regular, format!("{label}: {v}")))
}

/// The lines' table; its header again at the top of every page it runs onto.
fn table(page: &mut Layout, columns: &[Column], rows: Vec<Row>, currency: Currency) {
    let heading = |page: &mut Layout| {
        page.y -= 14.0;
        let mut x = MARGIN;
        for c in columns {
            let at = if c.align == Align::Right {
                x + c.width - 2.0
            } else {
                x
            };
            page.text(
                Style::Bold,
                SMALL,
                0.0,
                (at, page.y),
                c.align,
                c.width - 4.0,
                c.title,
            );
            x += c.width;
        }
        page.y -= 5.0;
        page.rule(MARGIN, RIGHT);
    };
    page.y -= 4.0;
    page.text(
        Style::Regular,
        SMALL,
        GRAY,
        (RIGHT, page.y - 6.0),
        Align::Right,
        300.0,
        &format!("Amounts in {}", currency.code()),
    );
    page.y -= 8.0;
    heading(page);
    for row in rows {
        if page.need(2.0 * BODY + 16.0) {
            heading(page);
        }
        page.y -= BODY + 4.0;
        let mut x = MARGIN;
        for (c, cell) in columns.iter().zip(&row.cells) {
            let at = if c.align == Align::Right {
                x + c.width - 2.0
            } else {
                x
            };
            // Words are cut short at the body size; figures shrink instead, never cut.
            let cell = match c.align {
                Align::Left => page.clip(Style::Regular, BODY - 0.5, c.width - 4.0, cell),
                Align::Right => cell.clone(),
            };
            page.text(
                Style::Regular,
                BODY - 0.5,
                0.0,
                (at, page.y),
                c.align,
                c.width - 4.0,
                &cell,
            );
            x += c.width;
        }
        page.y -= SMALL + 3.0;
        let indent = MARGIN + columns[0].width;
        page.text(
            Style::Regular,
            SMALL - 0.5,
            GRAY,
            (indent, page.y),
            Align::Left,
            RIGHT - indent,
            &row.detail,
        );
        page.y -= 4.0;
        page.rule(MARGIN, RIGHT);
    }
}

/// Label and amount pairs on the right, the last one bold.
fn summary(page: &mut Layout, rows: &[(String, i64)], total: (&str, i64), currency: Currency) {
    page.need((rows.len() as f32 + 2.0) * (BODY + 4.0));
    page.y -= 4.0;
    for (label, minor) in rows {
        page.y -= BODY + 4.0;
        page.text(
            Style::Regular,
            BODY,
            GRAY,
            (RIGHT - 130.0, page.y),
            Align::Right,
            160.0,
            label,
        );
        page.text(
            Style::Regular,
            BODY,
            0.0,
            (RIGHT, page.y),
            Align::Right,
            120.0,
            &amount(*minor, currency, true),
        );
    }
    page.y -= BODY + 8.0;
    page.text(
        Style::Bold,
        BODY + 2.0,
        0.0,
        (RIGHT - 130.0, page.y),
        Align::Right,
        160.0,
        total.0,
    );
    page.text(
        Style::Bold,
        BODY + 2.0,
        0.0,
        (RIGHT, page.y),
        Align::Right,
        120.0,
        &amount(total.1, currency, true),
    );
    page.y -= 8.0;
    page.rule(RIGHT - 300.0, RIGHT);
}

fn words(page: &mut Layout, text: &str) {
    let lines = page.wrap(Style::Bold, BODY, RIGHT - MARGIN, text);
    page.need((lines.len() as f32 + 2.0) * (BODY + 4.0));
    page.y -= BODY + 6.0;
    page.text(
        Style::Regular,
        SMALL,
        GRAY,
        (MARGIN, page.y),
        Align::Left,
        200.0,
        "Amount in words",
    );
    for line in lines {
        page.y -= BODY + 4.0;
        page.text(
            Style::Bold,
            BODY,
            0.0,
            (MARGIN, page.y),
            Align::Left,
            RIGHT - MARGIN,
            &line,
        );
    }
}

fn note(page: &mut Layout, text: &str) {
    page.need(SMALL + 12.0);
    page.y -= SMALL + 10.0;
    page.text(
        Style::Regular,
        SMALL,
        GRAY,
        (MARGIN, page.y),
        Align::Left,
        RIGHT - MARGIN,
        text,
    );
}

/// The second line of a row: the SKU and each tax with its rate.
fn detail(sku: &str, taxes: &[TaxLine], currency: Currency) -> String {
    let mut parts = vec![format!("SKU {sku}")];
    parts.extend(
        taxes
            .iter()
            .map(|t| format!("{} {}", tax_name(t), amount(t.amount, currency, false))),
    );
    parts.join("  ·  ")
}

#[cfg(test)]
mod tests {
    use super::{credit_note, invoice};
    use crate::documents::{CreditNoteDoc, InvoiceDoc};

    /// A document of `lines` lines in `currency`, from JSON so every field is there.
    fn doc(object: &str, lines: usize, currency: &str, unit: i64) -> serde_json::Value {
        let line = |i: usize| {
            serde_json::json!({"sku": format!("SKU-{i}"), "name": format!("A product with a rather long name that will not fit its column, number {i}"),
                "hsn": "6109", "qty": 1000, "unit_amount": unit, "amount": unit * 1000, "discount": 0,
                "taxable_amount": unit * 1000, "tax": 0, "tax_lines": [{"name": "IGST", "rate_bps": 1800, "amount": 0}],
                "total": unit * 1000})
        };
        let total = unit * 1000 * lines as i64;
        let party = serde_json::json!({"gstin": "29ABCDE1234F1ZW", "legal_name": "Asha Textiles Pvt Ltd",
            "address": "12 MG Road, a long address that wraps onto a second line of the seller's block, Bengaluru 560001",
            "country": "IN", "state": "KA"});
        let buyer = serde_json::json!({"id": "u_1", "name": "Asha Rao", "email": null, "phone": null, "gstin": null,
            "ship_to": {"country": "IN", "region": "MH", "postal_code": null, "city": "Mumbai", "line1": null, "line2": null}});
        serde_json::json!({"object": object, "number": "INV/2026-27/000042", "issued_at": "2026-11-29T20:00:00Z",
            "order_id": "ord_1", "refund_id": "re_1", "invoice_number": "INV/2026-27/000042",
            "invoice_issued_at": "2026-11-29T20:00:00Z", "currency": currency, "seller": party, "buyer": buyer,
            "place_of_supply": "MH", "prices_include_tax": true, "lines": (0..lines).map(line).collect::<Vec<_>>(),
            "subtotal": total, "discount": 0, "taxable_amount": total, "tax": 0, "tax_lines": [],
            "total": total, "total_in_words": "Words ".repeat(60)})
    }

    fn pages(pdf: &[u8]) -> usize {
        let parsed = lopdf::Document::load_mem(pdf).expect("the PDF parses");
        parsed.get_pages().len()
    }

    #[test]
    fn long_documents_run_onto_more_pages_in_any_currency() {
        for (currency, unit) in [
            ("INR", 1_000_000_000_000),
            ("KWD", 1_500),
            ("JPY", 7),
            ("USD", 99),
        ] {
            let long: InvoiceDoc =
                serde_json::from_value(doc("invoice", 100, currency, unit)).unwrap();
            let pdf = invoice(&long).unwrap();
            assert!(
                pages(&pdf) >= 3,
                "{currency}: 100 lines on {} pages",
                pages(&pdf)
            );
            let short: InvoiceDoc =
                serde_json::from_value(doc("invoice", 1, currency, unit)).unwrap();
            assert_eq!(pages(&invoice(&short).unwrap()), 1, "{currency}");
            let note: CreditNoteDoc =
                serde_json::from_value(doc("credit_note", 30, currency, unit)).unwrap();
            let pdf = credit_note(&note).unwrap();
            assert!(pages(&pdf) >= 1, "{currency}");
            if let Ok(dir) = std::env::var("TILL_SHEET_OUT") {
                std::fs::write(format!("{dir}/note-{currency}.pdf"), &pdf).unwrap();
            }
        }
    }
}
