//! Coupons as pricing sees them: whether one applies to a cart, the discount it gives, and
//! how that discount is spread over the lines it covers. How many uses are left is the
//! coupon store's business, not this file's.

use crate::ids::Sku;

/// A coupon code: 1–32 of `A-Z 0-9 - _` (upper case: codes are stored upper case).
pub fn valid_code(code: &str) -> bool {
    (1..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `percent_off` (1–100) of the covered lines, rounded down, at most `max_discount`.
    Percent {
        percent_off: i64,
        max_discount: Option<i64>,
    },
    /// `amount_off` in the store currency, never more than the covered lines.
    Fixed { amount_off: i64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coupon {
    /// Upper case.
    pub code: String,
    pub kind: Kind,
    /// The cart's subtotal must be at least this.
    pub min_subtotal: Option<i64>,
    /// The lines it covers; empty: every line.
    pub skus: Vec<Sku>,
    /// Unix milliseconds; valid from `starts_at` until `ends_at` inclusive.
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub active: bool,
}

/// Why a coupon does not apply: the `reason` of a 422 `coupon_invalid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    Unknown,
    Inactive,
    NotStarted,
    Ended,
    BelowMinSubtotal,
    CoversNoLine,
}

impl Invalid {
    pub fn reason(self) -> &'static str {
        match self {
            Invalid::Unknown => "unknown",
            Invalid::Inactive => "inactive",
            Invalid::NotStarted => "not_started",
            Invalid::Ended => "ended",
            Invalid::BelowMinSubtotal => "below_min_subtotal",
            Invalid::CoversNoLine => "covers_no_line",
        }
    }
}

impl Coupon {
    /// The discount of each line (in the order given) for lines of `(sku, amount)` at
    /// `now`; they add up to the coupon's whole discount.
    pub fn line_discounts(&self, lines: &[(&Sku, i64)], now: i64) -> Result<Vec<i64>, Invalid> {
        if !self.active {
            return Err(Invalid::Inactive);
        }
        if self.starts_at.is_some_and(|t| now < t) {
            return Err(Invalid::NotStarted);
        }
        if self.ends_at.is_some_and(|t| now > t) {
            return Err(Invalid::Ended);
        }
        let subtotal: i128 = lines.iter().map(|(_, a)| i128::from(*a)).sum();
        if self.min_subtotal.is_some_and(|m| subtotal < i128::from(m)) {
            return Err(Invalid::BelowMinSubtotal);
        }
        let covered: Vec<i64> = lines
            .iter()
            .map(|(sku, amount)| {
                if self.skus.is_empty() || self.skus.contains(sku) {
                    *amount
                } else {
                    0
                }
            })
            .collect();
        let covered_total: i128 = covered.iter().map(|a| i128::from(*a)).sum();
        if covered_total == 0 {
            return Err(Invalid::CoversNoLine);
        }
        let discount = match self.kind {
            Kind::Percent {
                percent_off,
                max_discount,
            } => {
                let off = covered_total * i128::from(percent_off) / 100;
                max_discount.map_or(off, |cap| off.min(i128::from(cap)))
            }
            Kind::Fixed { amount_off } => i128::from(amount_off).min(covered_total),
        };
        Ok(spread(discount.max(0), &covered))
    }
}

/// `total` spread over `amounts` in proportion, by largest remainder: each share is
/// rounded down, and the units left over go one each to the largest remainders (the
/// earlier line first on a tie). The shares add up to `total` exactly; `total` is at most
/// the sum of `amounts`, so no share exceeds its amount.
pub fn spread(total: i128, amounts: &[i64]) -> Vec<i64> {
    let sum: i128 = amounts.iter().map(|a| i128::from(*a)).sum();
    if sum == 0 || total == 0 {
        return vec![0; amounts.len()];
    }
    let mut shares: Vec<i128> = Vec::with_capacity(amounts.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(amounts.len());
    for (i, a) in amounts.iter().enumerate() {
        let exact = total * i128::from(*a);
        shares.push(exact / sum);
        remainders.push((exact % sum, i));
    }
    let left = total - shares.iter().sum::<i128>();
    remainders.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    for &(_, i) in remainders.iter().take(left as usize) {
        shares[i] += 1;
    }
    // Each share is at most its amount (total ≤ sum), so it fits the amount's type.
    shares.into_iter().map(|s| s as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::try_from(s).unwrap()
    }

    fn percent(off: i64, cap: Option<i64>) -> Coupon {
        Coupon {
            code: "SAVE".into(),
            kind: Kind::Percent {
                percent_off: off,
                max_discount: cap,
            },
            min_subtotal: None,
            skus: vec![],
            starts_at: None,
            ends_at: None,
            active: true,
        }
    }

    #[test]
    fn percent_rounds_down_and_stops_at_its_cap() {
        let (a, b) = (sku("A"), sku("B"));
        assert_eq!(
            percent(10, None).line_discounts(&[(&a, 10_000)], 0),
            Ok(vec![1_000])
        );
        assert_eq!(
            percent(10, None).line_discounts(&[(&a, 999)], 0),
            Ok(vec![99])
        );
        assert_eq!(
            percent(10, Some(500)).line_discounts(&[(&a, 10_000), (&b, 10_000)], 0),
            Ok(vec![250, 250])
        );
    }

    #[test]
    fn fixed_never_exceeds_what_it_covers() {
        let a = sku("A");
        let mut c = percent(1, None);
        c.kind = Kind::Fixed { amount_off: 20_000 };
        assert_eq!(c.line_discounts(&[(&a, 5_000)], 0), Ok(vec![5_000]));
        assert_eq!(c.line_discounts(&[(&a, 50_000)], 0), Ok(vec![20_000]));
    }

    #[test]
    fn sku_scoped_coupons_cover_only_their_lines() {
        let (a, b) = (sku("A"), sku("B"));
        let mut c = percent(50, None);
        c.skus = vec![b.clone()];
        assert_eq!(
            c.line_discounts(&[(&a, 1_000), (&b, 3_000)], 0),
            Ok(vec![0, 1_500])
        );
        assert_eq!(
            c.line_discounts(&[(&a, 1_000)], 0),
            Err(Invalid::CoversNoLine)
        );
    }

    #[test]
    fn every_reason_it_does_not_apply() {
        let a = sku("A");
        let lines = [(&a, 1_000)];
        let mut c = percent(10, None);
        c.active = false;
        assert_eq!(c.line_discounts(&lines, 5), Err(Invalid::Inactive));
        let mut c = percent(10, None);
        c.starts_at = Some(10);
        assert_eq!(c.line_discounts(&lines, 9), Err(Invalid::NotStarted));
        assert!(c.line_discounts(&lines, 10).is_ok());
        let mut c = percent(10, None);
        c.ends_at = Some(10);
        assert!(c.line_discounts(&lines, 10).is_ok());
        assert_eq!(c.line_discounts(&lines, 11), Err(Invalid::Ended));
        let mut c = percent(10, None);
        c.min_subtotal = Some(1_001);
        assert_eq!(c.line_discounts(&lines, 0), Err(Invalid::BelowMinSubtotal));
        c.min_subtotal = Some(1_000);
        assert!(c.line_discounts(&lines, 0).is_ok());
    }

    #[test]
    fn largest_remainder_breaks_ties_by_line_order() {
        assert_eq!(spread(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(spread(4, &[3, 3, 3]), vec![2, 1, 1]);
        assert_eq!(spread(5, &[1, 2, 3]), vec![1, 2, 2]);
        assert_eq!(spread(0, &[5, 5]), vec![0, 0]);
        assert_eq!(spread(7, &[0, 10]), vec![0, 7]);
    }

    proptest::proptest! {
        #[test]
        fn shares_add_up_and_never_exceed_their_line(
            amounts in proptest::collection::vec(0i64..1_000_000_000_000, 1..100),
            fraction in 0u32..=1000,
        ) {
            let sum: i128 = amounts.iter().map(|a| i128::from(*a)).sum();
            let total = sum * i128::from(fraction) / 1000;
            let shares = spread(total, &amounts);
            proptest::prop_assert_eq!(shares.iter().map(|s| i128::from(*s)).sum::<i128>(), total);
            for (share, amount) in shares.iter().zip(&amounts) {
                proptest::prop_assert!(*share >= 0 && share <= amount, "{} of {}", share, amount);
            }
        }
    }
}
