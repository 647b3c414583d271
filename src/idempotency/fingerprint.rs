//! The fingerprint of a request: what makes a retry "the same request" as the one a key
//! was first used for.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::ids::sha256_hex;

/// A number whose exact value is an integer is written out in full up to this many digits
/// (so `998`, `998.0` and `9.98e2` read alike); longer ones keep an exponent, which bounds
/// what `1e999999` costs.
const INTEGER_DIGITS_MAX: i64 = 40;

/// Identifies a request: method, path and body. A JSON body counts by its content (keys
/// sorted, whitespace ignored, numbers by their exact decimal value — never through a
/// float, where `998.0000000000000001` and `998.0` would be one number), so a client
/// re-serializing the same request still matches; anything else counts byte for byte.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = std::str::from_utf8(body).ok().and_then(|text| {
        let mut out = String::with_capacity(text.len());
        canonical_json(text, &mut out).map(|()| out.into_bytes())
    });
    let body = canonical.as_deref().unwrap_or(body);
    let mut bytes = Vec::with_capacity(method.len() + path.len() + body.len() + 2);
    for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        bytes.extend_from_slice(part);
    }
    sha256_hex(&bytes)
}

/// Writes `text` (one JSON value) in canonical form; `None` when it is not JSON.
fn canonical_json(text: &str, out: &mut String) -> Option<()> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    let text = raw.get();
    match text.as_bytes().first()? {
        b'{' => {
            let fields: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            out.push('{');
            for (n, (name, value)) in fields.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).ok()?);
                out.push(':');
                canonical_json(value.get(), out)?;
            }
            out.push('}');
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical_json(item.get(), out)?;
            }
            out.push(']');
        }
        b'"' => {
            let string: String = serde_json::from_str(text).ok()?;
            out.push_str(&serde_json::to_string(&string).ok()?);
        }
        b't' | b'f' | b'n' => out.push_str(text),
        _ => out.push_str(&canonical_number(text)?),
    }
    Some(())
}

/// A JSON number's exact value as text: `998`, `998.0`, `9.98e2` give `998`;
/// `998.0000000000000001` gives `9980000000000000001e-16`. Integers read as they are written.
fn canonical_number(text: &str) -> Option<String> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".to_string());
    }
    let significant = digits.trim_end_matches('0');
    let exponent = exponent
        .checked_sub(frac.len() as i64)?
        .checked_add((digits.len() - significant.len()) as i64)?;
    if (0..=INTEGER_DIGITS_MAX - significant.len() as i64).contains(&exponent) {
        let zeros = "0".repeat(exponent as usize);
        return Some(format!("{sign}{significant}{zeros}"));
    }
    Some(format!("{sign}{significant}e{exponent}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_json_in_other_clothes_is_the_same_request() {
        let a = super::fingerprint(
            "POST",
            "/v1/orders",
            br#"{"items": [{"sku": "A", "qty": 1}], "x": 1}"#,
        );
        let b = super::fingerprint(
            "POST",
            "/v1/orders",
            br#"{"x":1,"items":[{"qty":1,"sku":"A"}]}"#,
        );
        let c = super::fingerprint(
            "POST",
            "/v1/orders",
            br#"{"x":1,"items":[{"qty":2,"sku":"A"}]}"#,
        );
        let d = super::fingerprint(
            "POST",
            "/v1/orders/x",
            br#"{"x":1,"items":[{"qty":1,"sku":"A"}]}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn numbers_count_by_their_exact_value() {
        let check = |text: &str, expected: &str| {
            assert_eq!(
                super::canonical_number(text).as_deref(),
                Some(expected),
                "{text}"
            );
        };
        check("998", "998");
        check("998.0", "998");
        check("9.98e2", "998");
        check("99800E-2", "998");
        check("998.0000000000000001", "9980000000000000001e-16");
        check("-0.50", "-5e-1");
        check("0", "0");
        check("-0.0e5", "0");
        check("1e40", "1e40");
        check("1e39", &format!("1{}", "0".repeat(39)));
        check("12345678901234567890123", "12345678901234567890123");
        assert_eq!(super::canonical_number("1e99999999999999999999"), None);
        let f = |body: &str| super::fingerprint("POST", "/p", body.as_bytes());
        assert_ne!(
            f(r#"{"amount": 998.0000000000000001}"#),
            f(r#"{"amount": 998.0}"#)
        );
        assert_eq!(
            f(r#"{"amount": 998.0, "a": "\u0041"}"#),
            f(r#"{"a":"A","amount":998}"#)
        );
        assert_ne!(f(r#"{"a": "1"}"#), f(r#"{"a": 1}"#));
    }
}
