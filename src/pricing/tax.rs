//! Tax on one line: which rate applies to a shipment, the components it splits into
//! (India's CGST + SGST / UTGST, or IGST; elsewhere one named tax), and each component's
//! amount, computed on the line's discounted amount and rounded half up to the minor unit.

/// Rates are basis points: 1800 is 18%.
const BPS: i128 = 10_000;

/// The union territories without a legislature, where intra-state GST is CGST + UTGST.
const UNION_TERRITORIES: &[&str] = &["AN", "CH", "DH", "LD", "LA"];

const INDIA: &str = "IN";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// A state or region code, upper case (India: `KA`, `MH`, …).
    pub region: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    pub country: String,
    pub region: Option<String>,
    pub rate_bps: i64,
    /// The tax line's name outside India (`VAT`, `CA sales tax`).
    pub name: Option<String>,
}

pub use crate::money::TaxLine;

/// A tax a line pays: its name, the rate shown, and its share of the full rate in half
/// basis points (so half of an odd rate stays exact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub rate_bps: i64,
    half_bps: i64,
}

/// The most specific rate for `to`: country and region, else the country alone.
pub fn rate_for<'a>(rates: &'a [Rate], to: &Place) -> Option<&'a Rate> {
    let same_country = |r: &&Rate| r.country == to.country;
    rates
        .iter()
        .filter(same_country)
        .find(|r| r.region.is_some() && r.region == to.region)
        .or_else(|| {
            rates
                .iter()
                .filter(same_country)
                .find(|r| r.region.is_none())
        })
}

/// The components of tax on a supply from `origin` to `to` under `rates` (a tax code's
/// rates); none when nothing applies (no matching rate, or an export from India).
pub fn components(origin: &Place, to: &Place, rates: &[Rate]) -> Vec<Component> {
    if origin.country == INDIA && to.country != INDIA {
        return vec![]; // an export: zero-rated
    }
    let Some(rate) = rate_for(rates, to) else {
        return vec![];
    };
    let r = rate.rate_bps;
    if r <= 0 {
        return vec![];
    }
    if origin.country == INDIA {
        if origin.region.is_some() && origin.region == to.region {
            let state_tax = match &to.region {
                Some(region) if UNION_TERRITORIES.contains(&region.as_str()) => "UTGST",
                _ => "SGST",
            };
            return ["CGST", state_tax]
                .into_iter()
                .map(|name| Component {
                    name: name.into(),
                    rate_bps: r / 2,
                    half_bps: r,
                })
                .collect();
        }
        return vec![Component {
            name: "IGST".into(),
            rate_bps: r,
            half_bps: 2 * r,
        }];
    }
    vec![Component {
        name: rate.name.clone().unwrap_or_else(|| "Tax".into()),
        rate_bps: r,
        half_bps: 2 * r,
    }]
}

/// `n / d` rounded half up, for `n ≥ 0`, `d > 0`.
fn round_half_up(n: i128, d: i128) -> i128 {
    (2 * n + d) / (2 * d)
}

/// The tax lines of one line whose discounted amount is `amount`. Tax exclusive: each
/// component is `amount × rate`. Tax inclusive (`amount` already holds the tax): each is
/// `amount × 10000 / (10000 + full rate) × rate`, and the taxable value is what remains.
/// Returns the taxable value and the lines.
pub fn line_tax(amount: i64, components: &[Component], inclusive: bool) -> (i64, Vec<TaxLine>) {
    let full_half_bps: i128 = components.iter().map(|c| i128::from(c.half_bps)).sum();
    let lines: Vec<TaxLine> = components
        .iter()
        .map(|c| {
            let n = i128::from(amount) * i128::from(c.half_bps);
            let tax = if inclusive {
                // amount × (half/2) / (10000 + full), full = Σ half / 2.
                round_half_up(n, 2 * BPS + full_half_bps)
            } else {
                round_half_up(n, 2 * BPS)
            };
            TaxLine {
                name: c.name.clone(),
                rate_bps: c.rate_bps,
                // At most the amount times the rate; rates are capped where they are set.
                amount: tax as i64,
            }
        })
        .collect();
    let taxable = if inclusive {
        amount - lines.iter().map(|l| l.amount).sum::<i64>()
    } else {
        amount
    };
    (taxable, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(country: &str, region: Option<&str>) -> Place {
        Place {
            country: country.into(),
            region: region.map(str::to_string),
        }
    }

    fn rates() -> Vec<Rate> {
        vec![
            Rate {
                country: "IN".into(),
                region: None,
                rate_bps: 1800,
                name: None,
            },
            Rate {
                country: "US".into(),
                region: Some("CA".into()),
                rate_bps: 725,
                name: Some("CA sales tax".into()),
            },
            Rate {
                country: "DE".into(),
                region: None,
                rate_bps: 1900,
                name: Some("VAT".into()),
            },
        ]
    }

    fn names(c: &[Component]) -> Vec<(&str, i64)> {
        c.iter().map(|c| (c.name.as_str(), c.rate_bps)).collect()
    }

    #[test]
    fn india_within_a_state_across_states_and_abroad() {
        let ka = place("IN", Some("KA"));
        assert_eq!(
            names(&components(&ka, &ka, &rates())),
            [("CGST", 900), ("SGST", 900)]
        );
        assert_eq!(
            names(&components(&ka, &place("IN", Some("MH")), &rates())),
            [("IGST", 1800)]
        );
        assert!(components(&ka, &place("US", Some("CA")), &rates()).is_empty());
        let ch = place("IN", Some("CH"));
        assert_eq!(
            names(&components(&ch, &ch, &rates())),
            [("CGST", 900), ("UTGST", 900)]
        );
        // Delhi is a union territory with a legislature: SGST.
        let dl = place("IN", Some("DL"));
        assert_eq!(
            names(&components(&dl, &dl, &rates())),
            [("CGST", 900), ("SGST", 900)]
        );
    }

    #[test]
    fn elsewhere_the_most_specific_named_rate() {
        let us = place("US", Some("NY"));
        assert_eq!(
            names(&components(&us, &place("US", Some("CA")), &rates())),
            [("CA sales tax", 725)]
        );
        assert!(components(&us, &place("US", Some("TX")), &rates()).is_empty());
        assert_eq!(
            names(&components(&us, &place("DE", None), &rates())),
            [("VAT", 1900)]
        );
        let mut with_region = rates();
        with_region.push(Rate {
            country: "DE".into(),
            region: Some("BY".into()),
            rate_bps: 700,
            name: Some("reduced".into()),
        });
        assert_eq!(
            names(&components(&us, &place("DE", Some("BY")), &with_region)),
            [("reduced", 700)]
        );
        assert_eq!(
            names(&components(&us, &place("DE", Some("BE")), &with_region)),
            [("VAT", 1900)]
        );
    }

    #[test]
    fn the_worked_example() {
        // API.md: 10000 less a 10% coupon, KA to KA, 18%, tax exclusive.
        let ka = place("IN", Some("KA"));
        let c = components(&ka, &ka, &rates());
        let (taxable, lines) = line_tax(9_000, &c, false);
        assert_eq!(taxable, 9_000);
        assert_eq!(
            lines.iter().map(|l| l.amount).collect::<Vec<_>>(),
            [810, 810]
        );
    }

    #[test]
    fn half_up_and_inclusive_prices() {
        let ka = place("IN", Some("KA"));
        let gst = components(&ka, &place("IN", Some("MH")), &rates());
        // 18% of 25 is 4.5: half up to 5.
        assert_eq!(line_tax(25, &gst, false).1[0].amount, 5);
        assert_eq!(line_tax(24, &gst, false).1[0].amount, 4);
        // 11800 with 18% inside: 10000 taxable, 1800 tax.
        let (taxable, lines) = line_tax(11_800, &gst, true);
        assert_eq!((taxable, lines[0].amount), (10_000, 1_800));
        let split = components(&ka, &ka, &rates());
        let (taxable, lines) = line_tax(11_800, &split, true);
        assert_eq!(
            (taxable, lines[0].amount, lines[1].amount),
            (10_000, 900, 900)
        );
    }

    proptest::proptest! {
        #[test]
        fn inclusive_prices_reproduce_the_amount(
            amount in 0i64..1_000_000_000_000_000,
            rate in 0i64..=5_000,
            intra in proptest::bool::ANY,
        ) {
            let ka = place("IN", Some("KA"));
            let to = if intra { ka.clone() } else { place("IN", Some("MH")) };
            let rates = vec![Rate { country: "IN".into(), region: None, rate_bps: rate, name: None }];
            let c = components(&ka, &to, &rates);
            let (taxable, lines) = line_tax(amount, &c, true);
            let tax: i64 = lines.iter().map(|l| l.amount).sum();
            proptest::prop_assert_eq!(taxable + tax, amount);
            proptest::prop_assert!(taxable >= 0 && tax >= 0);
            // The tax is the rate's share of the amount, within a unit per component.
            let exact = i128::from(amount) * i128::from(rate) / (10_000 + i128::from(rate));
            proptest::prop_assert!((i128::from(tax) - exact).abs() <= lines.len() as i128);
            let (excl_taxable, excl) = line_tax(amount, &c, false);
            proptest::prop_assert_eq!(excl_taxable, amount);
            proptest::prop_assert!(excl.iter().all(|l| l.amount >= 0));
        }
    }
}
