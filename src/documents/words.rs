//! An amount in words, as a tax invoice states its total: Indian English for rupees, with
//! lakh and crore ("Rupees One Lakh Twenty Three Thousand Four Hundred Fifty Six and Paise
//! Seventy Eight Only"), and each other currency Till knows in its own units with
//! international grouping ("One Hundred Six Dollars and Twenty Cents Only").
//!
//! Choices: no hyphens and no "and" inside a number (cheque style: "Twenty One", "One
//! Hundred Six"); rupees and paise keep their plural before the number as Indian invoices
//! write them ("Rupees One Only"); no minor part → "Rupees Five Hundred Only"; no major part
//! → "Paise Fifty Only"; zero → "Rupees Zero Only"; a negative amount starts "Minus". A
//! currency without names here falls back to its code and "minor units". Integer arithmetic
//! only (the whole `i64` range, `i64::MIN` included).

use crate::money::Money;

const ONES: [&str; 20] = [
    "Zero",
    "One",
    "Two",
    "Three",
    "Four",
    "Five",
    "Six",
    "Seven",
    "Eight",
    "Nine",
    "Ten",
    "Eleven",
    "Twelve",
    "Thirteen",
    "Fourteen",
    "Fifteen",
    "Sixteen",
    "Seventeen",
    "Eighteen",
    "Nineteen",
];

const TENS: [&str; 10] = [
    "", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety",
];

/// How a currency's units are named: (major singular, major plural, minor singular, minor
/// plural), and whether the names go before the number, as rupees and paise do in India.
struct Units {
    major: (&'static str, &'static str),
    minor: (&'static str, &'static str),
    names_first: bool,
}

fn units(code: &str) -> Option<Units> {
    let western = |major, minor| Units {
        major,
        minor,
        names_first: false,
    };
    Some(match code {
        "INR" => Units {
            major: ("Rupees", "Rupees"),
            minor: ("Paise", "Paise"),
            names_first: true,
        },
        "USD" => western(("Dollar", "Dollars"), ("Cent", "Cents")),
        "EUR" => western(("Euro", "Euros"), ("Cent", "Cents")),
        "GBP" => western(("Pound", "Pounds"), ("Penny", "Pence")),
        "JPY" => western(("Yen", "Yen"), ("", "")),
        "BHD" => western(("Bahraini Dinar", "Bahraini Dinars"), ("Fils", "Fils")),
        "KWD" => western(("Kuwaiti Dinar", "Kuwaiti Dinars"), ("Fils", "Fils")),
        _ => return None,
    })
}

/// `money` in words, ending "Only".
pub fn amount_in_words(money: Money) -> String {
    let code = money.currency.code();
    let scale = 10u128.pow(money.currency.exponent());
    let magnitude = u128::from(money.minor.unsigned_abs());
    let (major, minor) = (magnitude / scale, magnitude % scale);
    let sign = if money.minor < 0 { "Minus " } else { "" };
    let indian = code == "INR";
    let number = |n: u128| {
        if indian {
            indian_words(n)
        } else {
            international_words(n)
        }
    };
    let Some(units) = units(code) else {
        return format!("{sign}{code} {} minor units Only", number(magnitude));
    };
    let name = |n: u128, (one, many): (&'static str, &'static str)| if n == 1 { one } else { many };
    let part = |n: u128, names| {
        let name = name(n, names);
        if units.names_first {
            format!("{name} {}", number(n))
        } else {
            format!("{} {name}", number(n))
        }
    };
    let text = match (major, minor) {
        (_, 0) => part(major, units.major),
        (0, _) => part(minor, units.minor),
        _ => format!(
            "{} and {}",
            part(major, units.major),
            part(minor, units.minor)
        ),
    };
    format!("{sign}{text} Only")
}

/// Below a hundred.
fn tens(n: u128, out: &mut Vec<&'static str>) {
    debug_assert!(n < 100);
    if n < 20 {
        out.push(ONES[n as usize]);
    } else {
        out.push(TENS[(n / 10) as usize]);
        if !n.is_multiple_of(10) {
            out.push(ONES[(n % 10) as usize]);
        }
    }
}

/// Below a thousand, nothing for zero.
fn hundreds(n: u128, out: &mut Vec<&'static str>) {
    debug_assert!(n < 1000);
    if n >= 100 {
        out.push(ONES[(n / 100) as usize]);
        out.push("Hundred");
    }
    if !n.is_multiple_of(100) {
        tens(n % 100, out);
    }
}

/// Indian grouping: crore (10^7), lakh (10^5), thousand, hundred; past a crore the crores
/// are themselves counted the same way ("Nine Hundred Twenty Two Crore …").
fn indian_words(n: u128) -> String {
    fn walk(n: u128, out: &mut Vec<&'static str>) {
        const CRORE: u128 = 10_000_000;
        if n >= CRORE {
            walk(n / CRORE, out);
            out.push("Crore");
        }
        let below = n % CRORE;
        for (size, name) in [(100_000, "Lakh"), (1_000, "Thousand")] {
            let count = below / size % 100;
            if count != 0 {
                tens(count, out);
                out.push(name);
            }
        }
        hundreds(below % 1_000, out);
    }
    if n == 0 {
        return ONES[0].to_string();
    }
    let mut out = Vec::new();
    walk(n, &mut out);
    out.join(" ")
}

/// International grouping by thousands, up to quintillions (past `i64`'s range).
fn international_words(n: u128) -> String {
    const SCALES: [&str; 7] = [
        "",
        "Thousand",
        "Million",
        "Billion",
        "Trillion",
        "Quadrillion",
        "Quintillion",
    ];
    if n == 0 {
        return ONES[0].to_string();
    }
    let mut groups = Vec::new();
    let mut rest = n;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let mut out = Vec::new();
    for (i, group) in groups.iter().enumerate().rev() {
        if *group != 0 {
            hundreds(*group, &mut out);
            if let Some(scale) = SCALES.get(i).filter(|s| !s.is_empty()) {
                out.push(scale);
            }
        }
    }
    out.join(" ")
}

#[cfg(test)]
// Amounts in minor units written in Indian groups with the paise apart (`1_23_456_78` is
// ₹1,23,456.78), so each row reads as its expected text.
#[allow(clippy::inconsistent_digit_grouping)]
mod tests {
    use super::amount_in_words;
    use crate::money::{Currency, Money};

    fn check(minor: i64, code: &str, expected: &str) {
        let money = Money::new(minor, Currency::parse(code).unwrap());
        assert_eq!(amount_in_words(money), expected, "{minor} {code}");
    }

    #[test]
    fn rupees_in_indian_english() {
        let table = [
            (0, "Rupees Zero Only"),
            (100, "Rupees One Only"),
            (1, "Paise One Only"),
            (50, "Paise Fifty Only"),
            (1_100, "Rupees Eleven Only"),
            (1_900, "Rupees Nineteen Only"),
            (2_000, "Rupees Twenty Only"),
            (9_900, "Rupees Ninety Nine Only"),
            (10_620, "Rupees One Hundred Six and Paise Twenty Only"),
            (50_000, "Rupees Five Hundred Only"),
            (100_000, "Rupees One Thousand Only"),
            (1_001_00, "Rupees One Thousand One Only"),
            (99_999_00, "Rupees Ninety Nine Thousand Nine Hundred Ninety Nine Only"),
            (1_00_000_00, "Rupees One Lakh Only"),
            (
                1_23_456_78,
                "Rupees One Lakh Twenty Three Thousand Four Hundred Fifty Six and Paise Seventy Eight Only",
            ),
            (
                99_99_999_99,
                "Rupees Ninety Nine Lakh Ninety Nine Thousand Nine Hundred Ninety Nine and Paise Ninety Nine Only",
            ),
            (1_00_00_000_00, "Rupees One Crore Only"),
            (
                12_34_56_789_01,
                "Rupees Twelve Crore Thirty Four Lakh Fifty Six Thousand Seven Hundred Eighty Nine and Paise One Only",
            ),
            (1_000_00_00_000_00, "Rupees One Thousand Crore Only"),
            (
                i64::MAX,
                "Rupees Nine Hundred Twenty Two Crore Thirty Three Lakh Seventy Two Thousand Thirty Six Crore \
                 Eighty Five Lakh Forty Seven Thousand Seven Hundred Fifty Eight and Paise Seven Only",
            ),
            (-10_620, "Minus Rupees One Hundred Six and Paise Twenty Only"),
        ];
        for (minor, expected) in table {
            check(minor, "INR", expected);
        }
    }

    #[test]
    fn other_currencies_in_their_own_units() {
        check(
            10_620,
            "USD",
            "One Hundred Six Dollars and Twenty Cents Only",
        );
        check(101, "USD", "One Dollar and One Cent Only");
        check(1_000_000_00, "EUR", "One Million Euros Only");
        check(250, "GBP", "Two Pounds and Fifty Pence Only");
        check(
            1_234_567,
            "JPY",
            "One Million Two Hundred Thirty Four Thousand Five Hundred Sixty Seven Yen Only",
        );
        check(1, "JPY", "One Yen Only");
        check(
            1_500,
            "BHD",
            "One Bahraini Dinar and Five Hundred Fils Only",
        );
        check(7, "KWD", "Seven Fils Only");
        check(
            i64::MIN,
            "USD",
            "Minus Ninety Two Quadrillion Two Hundred Thirty Three Trillion Seven Hundred Twenty Billion \
             Three Hundred Sixty Eight Million Five Hundred Forty Seven Thousand Seven Hundred Fifty Eight \
             Dollars and Eight Cents Only",
        );
    }
}
