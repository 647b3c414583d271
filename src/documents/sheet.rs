//! What a tax invoice and a credit note show on paper, and where: the title and number,
//! seller and buyer, place of supply, one row per line (with its HSN code and each tax),
//! the totals, the total in words. Amounts as people read them: `₹1,23,456.78` (Indian
//! grouping) for rupees, `$1,234.56` and so on for the rest.

use super::font::Style;
use super::pdf::{Align, Layout, MARGIN, PAGE_WIDTH};
use super::{Buyer, CreditNoteDoc, InvoiceDoc, Seller};
use crate::clock::{parse_rfc3339, rfc3339};
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

/// The invoice as a PDF.
pub fn invoice(doc: &InvoiceDoc) -> Result<Vec<u8>> {
    let currency = currency(&doc.currency)?;
    let money = |minor: i64| amount(minor, currency, false);
    let mut page = Layout::new()?;
    let mut refs = vec![
        ("Invoice No.", doc.number.clone()),
        ("Date", date(&doc.issued_at)?),
        ("Order", doc.order_id.clone()),
    ];
    refs.push(("Place of supply", place(&doc.place_of_supply)));
    header(&mut page, "TAX INVOICE", &refs);
    parties(&mut page, &doc.seller, &doc.buyer);
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
    let rows = doc
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            cells: vec![
                (i + 1).to_string(),
                l.name.clone(),
                l.hsn.clone().unwrap_or_default(),
                l.qty.to_string(),
                money(l.unit_amount),
                money(l.discount),
                money(l.taxable_amount),
                money(l.tax),
                money(l.total),
            ],
            detail: detail(&l.sku, &l.tax_lines, currency),
        })
        .collect();
    table(&mut page, &columns, rows, currency);
    let mut totals = vec![("Subtotal".to_string(), doc.subtotal)];
    if doc.discount != 0 {
        totals.push(("Discount".to_string(), -doc.discount));
    }
    totals.push(("Taxable value".to_string(), doc.taxable_amount));
    totals.extend(doc.tax_lines.iter().map(|t| (tax_name(t), t.amount)));
    summary(&mut page, &totals, ("Total", doc.total), currency);
    words(&mut page, &doc.total_in_words);
    if doc.prices_include_tax {
        note(&mut page, "Prices include tax.");
    }
    note(&mut page, "This is a computer-generated invoice.");
    page.finish(&doc.number)
}

/// The credit note as a PDF.
pub fn credit_note(doc: &CreditNoteDoc) -> Result<Vec<u8>> {
    let currency = currency(&doc.currency)?;
    let money = |minor: i64| amount(minor, currency, false);
    let mut page = Layout::new()?;
    let refs = [
        ("Credit Note No.", doc.number.clone()),
        ("Date", date(&doc.issued_at)?),
        ("Against invoice", doc.invoice_number.clone()),
        ("Invoice date", date(&doc.invoice_issued_at)?),
        ("Order", doc.order_id.clone()),
        ("Refund", doc.refund_id.clone()),
        ("Place of supply", place(&doc.place_of_supply)),
    ];
    header(&mut page, "CREDIT NOTE", &refs);
    parties(&mut page, &doc.seller, &doc.buyer);
    let columns = [
        col("#", 18.0, Align::Left),
        col("Item", 220.0, Align::Left),
        col("HSN", 60.0, Align::Left),
        col("Taxable", 80.0, Align::Right),
        col("Tax", 80.0, Align::Right),
        col("Amount", 81.0, Align::Right),
    ];
    let rows = doc
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| Row {
            cells: vec![
                (i + 1).to_string(),
                l.name.clone(),
                l.hsn.clone().unwrap_or_default(),
                money(l.taxable_amount),
                money(l.tax),
                money(l.total),
            ],
            detail: detail(&l.sku, &l.tax_lines, currency),
        })
        .collect();
    table(&mut page, &columns, rows, currency);
    let mut totals = vec![("Taxable value".to_string(), doc.taxable_amount)];
    totals.extend(doc.tax_lines.iter().map(|t| (tax_name(t), t.amount)));
    summary(&mut page, &totals, ("Total credited", doc.total), currency);
    words(&mut page, &doc.total_in_words);
    note(&mut page, "This is a computer-generated credit note.");
    page.finish(&doc.number)
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
            page.text(
                Style::Regular,
                BODY - 0.5,
                0.0,
                (at, page.y),
                c.align,
                c.width - 4.0,
                cell,
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

/// `CGST 9%`, `IGST 18%`, `VAT 2.5%`.
fn tax_name(t: &TaxLine) -> String {
    let whole = t.rate_bps / 100;
    let rest = t.rate_bps % 100;
    let rate = match rest {
        0 => whole.to_string(),
        r if r % 10 == 0 => format!("{whole}.{}", r / 10),
        r => format!("{whole}.{r:02}"),
    };
    format!("{} {rate}%", t.name)
}

fn place(state: &Option<String>) -> String {
    state.clone().unwrap_or_else(|| "-".into())
}

/// The day in India of an RFC 3339 moment: `29 Nov 2026`.
fn date(at: &str) -> Result<String> {
    const IST_OFFSET_MS: i64 = (5 * 60 + 30) * 60 * 1000;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ms = parse_rfc3339(at).ok_or_else(|| corrupt("documents.body issued_at", at))?;
    let day = rfc3339(ms + IST_OFFSET_MS);
    let month: usize = day[5..7].parse().unwrap_or(1);
    Ok(format!(
        "{} {} {}",
        &day[8..10],
        MONTHS[(month.clamp(1, 12)) - 1],
        &day[..4]
    ))
}

/// An amount as people read it: digits grouped (Indian lakh/crore grouping for rupees), the
/// minor unit after the point, the symbol in front when asked for.
pub fn amount(minor: i64, currency: Currency, symbol: bool) -> String {
    let scale = 10u64.pow(currency.exponent());
    let magnitude = minor.unsigned_abs();
    let (major, fraction) = (magnitude / scale, magnitude % scale);
    let digits = major.to_string();
    let indian = currency.code() == "INR";
    let mut groups: Vec<&str> = Vec::new();
    let mut end = digits.len();
    let mut size = 3;
    while end > 0 {
        let start = end.saturating_sub(size);
        groups.push(&digits[start..end]);
        end = start;
        if indian {
            size = 2;
        }
    }
    groups.reverse();
    let mut text = groups.join(",");
    if currency.exponent() > 0 {
        let width = currency.exponent() as usize;
        text = format!("{text}.{fraction:0width$}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    if !symbol {
        return format!("{sign}{text}");
    }
    match currency.code() {
        "INR" => format!("{sign}₹{text}"),
        "USD" => format!("{sign}${text}"),
        "EUR" => format!("{sign}€{text}"),
        "GBP" => format!("{sign}£{text}"),
        "JPY" => format!("{sign}¥{text}"),
        code => format!("{sign}{code} {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{amount, date, tax_name};
    use crate::money::{Currency, TaxLine};

    #[test]
    fn amounts_read_as_people_write_them() {
        let inr = Currency::parse("INR").unwrap();
        let table = [
            (0, "₹0.00"),
            (5, "₹0.05"),
            (10_620, "₹106.20"),
            (1_23_456_78, "₹1,23,456.78"),
            (12_34_56_789_01, "₹12,34,56,789.01"),
            (-1_000_00, "-₹1,000.00"),
            (i64::MIN, "-₹92,23,37,20,36,85,47,758.08"),
        ];
        for (minor, text) in table {
            assert_eq!(amount(minor, inr, true), text);
        }
        assert_eq!(amount(1_23_456_78, inr, false), "1,23,456.78");
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(amount(123_456_78, usd, true), "$123,456.78");
        assert_eq!(
            amount(1_234_567, Currency::parse("JPY").unwrap(), true),
            "¥1,234,567"
        );
        assert_eq!(
            amount(1_500, Currency::parse("KWD").unwrap(), true),
            "KWD 1.500"
        );
    }

    #[test]
    fn rates_and_dates() {
        let t = |rate_bps| {
            tax_name(&TaxLine {
                name: "GST".into(),
                rate_bps,
                amount: 0,
            })
        };
        assert_eq!(t(900), "GST 9%");
        assert_eq!(t(250), "GST 2.5%");
        assert_eq!(t(1234), "GST 12.34%");
        assert_eq!(t(5), "GST 0.05%");
        // 20:00 UTC is already the next day in India.
        assert_eq!(date("2026-11-29T20:00:00Z").unwrap(), "30 Nov 2026");
    }
}
