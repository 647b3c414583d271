//! Figures and dates as a printed document shows them: amounts grouped the way their
//! readers write them (`₹1,23,456.78`, Indian lakh and crore grouping for rupees;
//! `$123,456.78` for the rest), tax rates as percentages, the day in India.

use crate::clock::{parse_rfc3339, rfc3339};
use crate::error::{corrupt, Result};
use crate::money::{Currency, TaxLine};

/// `CGST 9%`, `IGST 18%`, `VAT 2.5%`.
pub fn tax_name(t: &TaxLine) -> String {
    let whole = t.rate_bps / 100;
    let rest = t.rate_bps % 100;
    let rate = match rest {
        0 => whole.to_string(),
        r if r % 10 == 0 => format!("{whole}.{}", r / 10),
        r => format!("{whole}.{r:02}"),
    };
    format!("{} {rate}%", t.name)
}

pub fn place(state: &Option<String>) -> String {
    state.clone().unwrap_or_else(|| "-".into())
}

/// The day in India of an RFC 3339 moment: `29 Nov 2026`.
pub fn date(at: &str) -> Result<String> {
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
// Amounts in minor units written in Indian groups with the paise apart (`1_23_456_78` is
// ₹1,23,456.78), so each row reads as its expected text.
#[allow(clippy::inconsistent_digit_grouping)]
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
