//! An order's or a quote's figures as a table: each line, the subtotal, the coupon's
//! discount, each tax by name and rate, the total. The checkout's summary and the order's
//! page show the same table.

use maud::{html, Markup};

use super::money;
use crate::documents::format::tax_name;
use crate::money::{Currency, TaxLine};
use crate::orders::Line;

/// The figures of a priced cart or an order.
pub struct Figures<'a> {
    pub currency: Currency,
    pub items: &'a [Line],
    /// Each line's product name, by SKU (a product since removed shows its SKU).
    pub names: &'a [(String, String)],
    pub subtotal: i64,
    pub discount: i64,
    pub coupon: Option<&'a str>,
    pub tax_lines: &'a [TaxLine],
    pub total: i64,
    /// Prices include their tax: the taxes are shown as contained in the total.
    pub inclusive: bool,
}

pub fn table(f: &Figures) -> Markup {
    let name = |sku: &str| {
        f.names
            .iter()
            .find(|(s, _)| s == sku)
            .map_or(sku.to_string(), |(_, n)| n.clone())
    };
    html! {
        table {
            caption.muted { "Prices in " (f.currency.code()) }
            thead { tr { th scope="col" { "Item" } th.num scope="col" { "Qty" } th.num scope="col" { "Amount" } } }
            tbody {
                @for line in f.items {
                    tr {
                        td { (name(line.sku.as_str())) br; span.muted { (money(line.unit_amount, f.currency)) " each" } }
                        td.num { (line.qty) }
                        td.num { (money(line.amount, f.currency)) }
                    }
                }
            }
            tfoot {
                tr { th scope="row" colspan="2" { "Subtotal" } td.num { (money(f.subtotal, f.currency)) } }
                @if f.discount > 0 {
                    tr { th scope="row" colspan="2" { "Discount" @if let Some(code) = f.coupon { " (" (code) ")" } } td.num { "−" (money(f.discount, f.currency)) } }
                }
                @for tax in f.tax_lines {
                    tr {
                        th scope="row" colspan="2" { (tax_name(tax)) @if f.inclusive { " (included)" } }
                        td.num { (money(tax.amount, f.currency)) }
                    }
                }
                tr.total { th scope="row" colspan="2" { "Total" } td.num #total { (money(f.total, f.currency)) } }
            }
        }
    }
}
