//! Pricing, the pure core: a cart's lines priced from the catalog become an order's
//! figures — the coupon's discount spread over the lines it covers (`coupon.rs`), then each
//! line's tax on its discounted amount (`tax.rs`), then the totals. No I/O: the saga reads
//! the catalog, the coupon and the seller's tax settings and hands them in, so a quote and
//! an order are priced by the same function.

pub mod coupon;
pub mod gstin;
pub mod refund;
pub mod routes;
pub mod store;
pub mod tax;

use crate::ids::Sku;
pub use coupon::{Coupon, Invalid};
pub use tax::{Place, Rate, TaxLine};

/// The seller's tax settings that pricing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seller {
    pub origin: Place,
    pub prices_include_tax: bool,
}

/// A tax code as a product names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaxCode {
    pub hsn: Option<String>,
    pub rates: Vec<Rate>,
}

/// One line of a cart, priced from the catalog.
#[derive(Clone, Debug)]
pub struct CartLine {
    pub sku: Sku,
    pub qty: i64,
    pub unit_amount: i64,
    /// The product's tax code, if it names one that exists.
    pub tax_code: Option<TaxCode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: Sku,
    pub qty: i64,
    pub unit_amount: i64,
    /// `unit_amount × qty`.
    pub amount: i64,
    pub discount: i64,
    pub hsn: Option<String>,
    pub tax: i64,
    pub tax_lines: Vec<TaxLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    /// The lines' taxes summed by name and rate, in the order they first appear.
    pub tax_lines: Vec<TaxLine>,
    pub total: i64,
    pub coupon: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceError {
    /// A figure would not fit in 64 bits.
    TooLarge,
    Coupon(Invalid),
}

/// Prices `lines` shipped to `ship_to` (the seller's own place when absent), with
/// `coupon` at `now`, under the seller's tax settings (no tax without them).
pub fn price(
    lines: &[CartLine],
    coupon: Option<&Coupon>,
    seller: Option<&Seller>,
    ship_to: Option<&Place>,
    now: i64,
) -> Result<Priced, PriceError> {
    let amounts: Vec<i64> = lines
        .iter()
        .map(|l| l.unit_amount.checked_mul(l.qty).ok_or(PriceError::TooLarge))
        .collect::<Result<_, _>>()?;
    let subtotal = sum(amounts.iter().copied())?;
    let discounts = match coupon {
        Some(c) => {
            let keyed: Vec<(&Sku, i64)> =
                lines.iter().map(|l| &l.sku).zip(amounts.clone()).collect();
            c.line_discounts(&keyed, now).map_err(PriceError::Coupon)?
        }
        None => vec![0; lines.len()],
    };
    let inclusive = seller.is_some_and(|s| s.prices_include_tax);
    let mut priced = Vec::with_capacity(lines.len());
    for ((line, amount), discount) in lines.iter().zip(&amounts).zip(&discounts) {
        let discounted = amount - discount;
        let components = match (seller, &line.tax_code) {
            (Some(s), Some(code)) => {
                tax::components(&s.origin, ship_to.unwrap_or(&s.origin), &code.rates)
            }
            _ => vec![],
        };
        let (_, tax_lines) = tax::line_tax(discounted, &components, inclusive);
        priced.push(PricedLine {
            sku: line.sku.clone(),
            qty: line.qty,
            unit_amount: line.unit_amount,
            amount: *amount,
            discount: *discount,
            hsn: line.tax_code.as_ref().and_then(|c| c.hsn.clone()),
            tax: sum(tax_lines.iter().map(|t| t.amount))?,
            tax_lines,
        });
    }
    let discount = sum(discounts.iter().copied())?;
    let tax = sum(priced.iter().map(|l| l.tax))?;
    let net = subtotal - discount;
    let total = if inclusive {
        net
    } else {
        net.checked_add(tax).ok_or(PriceError::TooLarge)?
    };
    Ok(Priced {
        tax_lines: summed(&priced),
        lines: priced,
        subtotal,
        discount,
        tax,
        total,
        coupon: coupon.map(|c| c.code.clone()),
    })
}

fn sum(values: impl IntoIterator<Item = i64>) -> Result<i64, PriceError> {
    crate::money::sum(values).ok_or(PriceError::TooLarge)
}

/// The order's tax lines: each (name, rate) once, with its amounts added up.
fn summed(lines: &[PricedLine]) -> Vec<TaxLine> {
    let mut out: Vec<TaxLine> = Vec::new();
    for t in lines.iter().flat_map(|l| &l.tax_lines) {
        match out
            .iter_mut()
            .find(|o| o.name == t.name && o.rate_bps == t.rate_bps)
        {
            Some(o) => o.amount += t.amount,
            None => out.push(t.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::coupon::Kind;
    use super::*;

    fn ka() -> Place {
        Place {
            country: "IN".into(),
            region: Some("KA".into()),
        }
    }

    fn line(sku: &str, qty: i64, unit: i64, rate_bps: Option<i64>) -> CartLine {
        CartLine {
            sku: Sku::try_from(sku).unwrap(),
            qty,
            unit_amount: unit,
            tax_code: rate_bps.map(|r| TaxCode {
                hsn: Some("6109".into()),
                rates: vec![Rate {
                    country: "IN".into(),
                    region: None,
                    rate_bps: r,
                    name: None,
                }],
            }),
        }
    }

    fn save10() -> Coupon {
        Coupon {
            code: "SAVE10".into(),
            kind: Kind::Percent {
                percent_off: 10,
                max_discount: None,
            },
            min_subtotal: None,
            skus: vec![],
            starts_at: None,
            ends_at: None,
            active: true,
        }
    }

    fn seller(inclusive: bool) -> Seller {
        Seller {
            origin: ka(),
            prices_include_tax: inclusive,
        }
    }

    /// API.md's figures: one TEE-1 at 10000, KA to KA, 18%, tax exclusive, 10% coupon.
    #[test]
    fn the_worked_example_of_the_contract() {
        let p = price(
            &[line("TEE-1", 1, 10_000, Some(1800))],
            Some(&save10()),
            Some(&seller(false)),
            Some(&ka()),
            0,
        )
        .unwrap();
        let l = &p.lines[0];
        assert_eq!((l.amount, l.discount, l.tax), (10_000, 1_000, 1_620));
        assert_eq!(l.hsn.as_deref(), Some("6109"));
        let cgst = TaxLine {
            name: "CGST".into(),
            rate_bps: 900,
            amount: 810,
        };
        let sgst = TaxLine {
            name: "SGST".into(),
            ..cgst.clone()
        };
        assert_eq!(l.tax_lines, vec![cgst.clone(), sgst.clone()]);
        assert_eq!(
            (p.subtotal, p.discount, p.tax, p.total),
            (10_000, 1_000, 1_620, 10_620)
        );
        assert_eq!(p.tax_lines, vec![cgst, sgst]);
        assert_eq!(p.coupon.as_deref(), Some("SAVE10"));
    }

    #[test]
    fn inclusive_totals_hold_their_tax() {
        let p = price(
            &[line("TEE-1", 1, 11_200, Some(1200))],
            None,
            Some(&seller(true)),
            Some(&ka()),
            0,
        )
        .unwrap();
        assert_eq!((p.subtotal, p.tax, p.total), (11_200, 1_200, 11_200));
    }

    #[test]
    fn no_settings_or_no_code_means_no_tax() {
        let lines = [line("A", 2, 500, Some(1800)), line("B", 1, 300, None)];
        let p = price(&lines, None, None, None, 0).unwrap();
        assert_eq!((p.subtotal, p.tax, p.total), (1_300, 0, 1_300));
        let p = price(&lines, None, Some(&seller(false)), None, 0).unwrap();
        // Shipped nowhere in particular: taxed as a supply within the seller's state.
        assert_eq!(p.lines[0].tax, 180);
        assert_eq!(p.lines[1].tax, 0);
        assert!(p.lines[1].tax_lines.is_empty());
    }

    #[test]
    fn export_is_untaxed_and_other_states_pay_igst() {
        let lines = [line("A", 1, 10_000, Some(1800))];
        let us = Place {
            country: "US".into(),
            region: Some("CA".into()),
        };
        let p = price(&lines, None, Some(&seller(false)), Some(&us), 0).unwrap();
        assert_eq!((p.tax, p.total), (0, 10_000));
        let mh = Place {
            country: "IN".into(),
            region: Some("MH".into()),
        };
        let p = price(&lines, None, Some(&seller(false)), Some(&mh), 0).unwrap();
        assert_eq!(p.tax_lines.len(), 1);
        assert_eq!((p.tax_lines[0].name.as_str(), p.tax), ("IGST", 1_800));
    }

    #[test]
    fn an_invalid_coupon_says_why_and_overflow_is_refused() {
        let mut c = save10();
        c.active = false;
        assert_eq!(
            price(&[line("A", 1, 100, None)], Some(&c), None, None, 0),
            Err(PriceError::Coupon(Invalid::Inactive))
        );
        assert_eq!(
            price(&[line("A", 2, i64::MAX / 2 + 1, None)], None, None, None, 0),
            Err(PriceError::TooLarge)
        );
    }

    proptest::proptest! {
        /// Over any cart, coupon and seller: the line discounts add up to the discount,
        /// the components to each line's tax and the lines' taxes to the order's, the
        /// order's tax lines to its tax, and nothing is negative.
        #[test]
        fn the_figures_add_up(
            lines in proptest::collection::vec((1i64..=1000, 0i64..1_000_000_000, 0i64..=2_800), 1..20),
            percent_off in 1i64..=100,
            cap in proptest::option::of(0i64..100_000_000),
            fixed in proptest::option::of(0i64..10_000_000_000),
            inclusive in proptest::bool::ANY,
            interstate in proptest::bool::ANY,
        ) {
            let cart: Vec<CartLine> = lines
                .iter()
                .enumerate()
                .map(|(i, (qty, unit, rate))| line(&format!("S{i}"), *qty, *unit, Some(*rate)))
                .collect();
            let mut c = save10();
            c.kind = match fixed {
                Some(amount_off) => Kind::Fixed { amount_off },
                None => Kind::Percent { percent_off, max_discount: cap },
            };
            let to = Place { country: "IN".into(), region: Some(if interstate { "MH" } else { "KA" }.into()) };
            let p = price(&cart, Some(&c), Some(&seller(inclusive)), Some(&to), 0);
            let p = match p {
                Err(PriceError::Coupon(Invalid::CoversNoLine)) => return Ok(()),
                other => other.unwrap(),
            };
            proptest::prop_assert_eq!(p.lines.iter().map(|l| l.discount).sum::<i64>(), p.discount);
            proptest::prop_assert!(p.discount <= p.subtotal);
            for l in &p.lines {
                proptest::prop_assert!(l.discount >= 0 && l.discount <= l.amount);
                proptest::prop_assert_eq!(l.tax_lines.iter().map(|t| t.amount).sum::<i64>(), l.tax);
                proptest::prop_assert!(l.tax >= 0);
                if inclusive {
                    proptest::prop_assert!(l.tax <= l.amount - l.discount);
                }
            }
            proptest::prop_assert_eq!(p.lines.iter().map(|l| l.tax).sum::<i64>(), p.tax);
            proptest::prop_assert_eq!(p.tax_lines.iter().map(|t| t.amount).sum::<i64>(), p.tax);
            let expected = if inclusive { p.subtotal - p.discount } else { p.subtotal - p.discount + p.tax };
            proptest::prop_assert_eq!(p.total, expected);
        }
    }
}
