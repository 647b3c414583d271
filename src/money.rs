//! Money as integer minor units: currencies and their exponents, checked arithmetic, and the
//! decimal text the seed's `/payment/initiate` sends. No floating point touches an amount.

use std::fmt;

/// The largest price a product may carry, in minor units. With 1,000 units a line and 100
/// lines an order this keeps every total far below `i64::MAX`.
pub const PRICE_MINOR_MAX: i64 = 1_000_000_000_000;

/// An ISO-4217 currency Till accepts, with the number of digits of its minor unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

const CURRENCIES: &[Currency] = &[
    Currency {
        code: "INR",
        exponent: 2,
    },
    Currency {
        code: "USD",
        exponent: 2,
    },
    Currency {
        code: "EUR",
        exponent: 2,
    },
    Currency {
        code: "GBP",
        exponent: 2,
    },
    Currency {
        code: "JPY",
        exponent: 0,
    },
    Currency {
        code: "BHD",
        exponent: 3,
    },
    Currency {
        code: "KWD",
        exponent: 3,
    },
];

impl Currency {
    pub fn parse(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    pub fn exponent(self) -> u32 {
        self.exponent
    }

    /// Parses a non-negative decimal in major units (`"999.0"`, `"12"`) into minor units.
    /// More fractional digits than the currency has, exponents, signs or junk are refused.
    pub fn parse_major(self, text: &str) -> Result<i64, String> {
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (text.contains('.') && !digits(frac)) {
            return Err(format!("amount must be a plain decimal number, got {text}"));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > self.exponent as usize {
            return Err(format!(
                "{} has {} decimal places; amount {text} has more",
                self.code, self.exponent
            ));
        }
        let scale = 10i64.pow(self.exponent);
        let whole: i64 = whole
            .parse()
            .map_err(|_| format!("amount {text} is too large"))?;
        let frac_minor: i64 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<width$}", width = self.exponent as usize);
            padded
                .parse()
                .map_err(|_| format!("amount {text} is not a number"))?
        };
        whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(frac_minor))
            .ok_or_else(|| format!("amount {text} is too large"))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An amount in a currency's minor units. Amounts in different currencies never meet: the
/// arithmetic here is checked for overflow and for the currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.minor, self.currency)
    }
}

/// One tax on a line, an order or a refund: its name (`CGST`, `VAT`), its rate in basis
/// points, and the amount in minor units.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TaxLine {
    pub name: String,
    pub rate_bps: i64,
    pub amount: i64,
}

/// `unit × qty`, or `None` on overflow.
pub fn line_amount(unit_minor: i64, qty: i64) -> Option<i64> {
    unit_minor.checked_mul(qty)
}

/// The sum of amounts, or `None` on overflow.
pub fn sum<I: IntoIterator<Item = i64>>(amounts: I) -> Option<i64> {
    amounts
        .into_iter()
        .try_fold(0i64, |acc, a| acc.checked_add(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: &str, text: &str, expected: Result<i64, ()>) {
        let got = Currency::parse(code)
            .unwrap()
            .parse_major(text)
            .map_err(|_| ());
        assert_eq!(got, expected, "{code} {text}");
    }

    #[test]
    fn parses_major_units_exactly() {
        check("INR", "999.0", Ok(99900));
        check("INR", "999", Ok(99900));
        check("INR", "999.99", Ok(99999));
        check("INR", "0.10", Ok(10));
        check("INR", "999.999", Err(()));
        check("INR", "999.990", Ok(99999));
        check("JPY", "500", Ok(500));
        check("JPY", "500.5", Err(()));
        check("KWD", "1.234", Ok(1234));
        check("INR", "-1", Err(()));
        check("INR", "1e3", Err(()));
        check("INR", "", Err(()));
        check("INR", ".5", Err(()));
        check("INR", "5.", Err(()));
        check("INR", "99999999999999999999", Err(()));
    }

    #[test]
    fn unknown_currency_is_refused() {
        assert!(Currency::parse("XYZ").is_none());
        assert_eq!(Currency::parse("BHD").unwrap().exponent(), 3);
    }

    /// Minor units written as a major-unit decimal, the way a client would send them.
    fn to_major(minor: i64, exponent: u32) -> String {
        let scale = 10i64.pow(exponent);
        if exponent == 0 {
            return minor.to_string();
        }
        format!(
            "{}.{:0width$}",
            minor / scale,
            minor % scale,
            width = exponent as usize
        )
    }

    proptest::proptest! {
        #[test]
        fn major_units_round_trip(minor in 0i64..=1_000_000_000_000_000, code in proptest::sample::select(vec!["INR", "JPY", "KWD", "USD"])) {
            let currency = Currency::parse(code).unwrap();
            proptest::prop_assert_eq!(currency.parse_major(&to_major(minor, currency.exponent())), Ok(minor));
        }

        #[test]
        fn extra_decimals_are_refused(whole in 0i64..1_000_000, extra in 1u32..9) {
            let text = format!("{whole}.{}", "1".repeat(2 + extra as usize));
            proptest::prop_assert!(Currency::parse("INR").unwrap().parse_major(&text).is_err());
        }

        #[test]
        fn checked_arithmetic_matches_wide_arithmetic(unit in 0i64..=i64::MAX, qty in 0i64..=1000, amounts in proptest::collection::vec(0i64..=i64::MAX / 50, 0..100)) {
            let wide = unit as i128 * qty as i128;
            proptest::prop_assert_eq!(line_amount(unit, qty), i64::try_from(wide).ok());
            let wide_sum: i128 = amounts.iter().map(|a| *a as i128).sum();
            proptest::prop_assert_eq!(sum(amounts.iter().copied()), i64::try_from(wide_sum).ok());
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(line_amount(49900, 2), Some(99800));
        assert_eq!(line_amount(i64::MAX, 2), None);
        assert_eq!(sum([1, 2, 3]), Some(6));
        assert_eq!(sum([i64::MAX, 1]), None);
    }
}
