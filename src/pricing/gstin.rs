//! GSTIN, India's GST identification number: 15 characters — a two-digit state code, the
//! holder's PAN (five letters, four digits, a letter), an entity number, a fourteenth
//! character (`Z` today) and a check character over the first fourteen.

/// Characters in the order of their value in the check computation.
const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The state codes GST uses: 01–38 for states and union territories, 97 for other
/// territory and 99 for the centre's own registrations.
fn valid_state_code(code: u32) -> bool {
    (1..=38).contains(&code) || code == 97 || code == 99
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

/// The check character of the first fourteen characters: each value times 1 or 2 in
/// turn, its base-36 digits summed, and the sum's complement modulo 36.
fn check_char(first14: &[u8]) -> Option<u8> {
    let mut sum = 0;
    for (i, &c) in first14.iter().enumerate() {
        let product = value(c)? * if i % 2 == 0 { 1 } else { 2 };
        sum += product / 36 + product % 36;
    }
    Some(ALPHABET[((36 - sum % 36) % 36) as usize])
}

/// Checks a GSTIN; the error says what is wrong with it.
pub fn check(gstin: &str) -> Result<(), String> {
    let b = gstin.as_bytes();
    if b.len() != 15 || !b.iter().all(|c| value(*c).is_some()) {
        return Err("gstin must be 15 characters of 0-9 and A-Z".into());
    }
    let state: u32 = gstin[..2]
        .parse()
        .map_err(|_| "gstin must start with a two-digit state code".to_string())?;
    if !valid_state_code(state) {
        return Err(format!(
            "gstin state code {:02} is not a GST state code",
            state
        ));
    }
    let pan = &b[2..12];
    let pan_ok = pan[..5].iter().all(u8::is_ascii_uppercase)
        && pan[5..9].iter().all(u8::is_ascii_digit)
        && pan[9].is_ascii_uppercase();
    if !pan_ok {
        return Err("gstin characters 3-12 must be a PAN (AAAAA9999A)".into());
    }
    if b[12] == b'0' {
        return Err("gstin entity number (character 13) must be 1-9 or A-Z".into());
    }
    if check_char(&b[..14]) != Some(b[14]) {
        return Err("gstin check character does not match".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn well_formed_numbers_pass() {
        for gstin in ["29ABCDE1234F1ZW", "27AAPFU0939F1ZV", "29AAGCB7383J1Z4"] {
            assert_eq!(check(gstin), Ok(()), "{gstin}");
        }
    }

    #[test]
    fn each_kind_of_mistake_is_refused() {
        for bad in [
            "",
            "29ABCDE1234F1Z",   // 14 characters
            "29ABCDE1234F1ZWX", // 16
            "29abcde1234f1zw",  // lower case
            "00ABCDE1234F1ZW",  // no such state
            "40ABCDE1234F1ZW",  // no such state
            "2XABCDE1234F1ZW",  // state not digits
            "29ABCD11234F1ZW",  // PAN letters
            "29ABCDE12X4F1ZW",  // PAN digits
            "29ABCDE12345",     // short
            "29ABCDE1234F0ZW",  // entity number 0
            "29ABCDE1234F1ZX",  // check character
            "29ABCDE1234F1Z-",  // not alphanumeric
        ] {
            assert!(check(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn one_changed_character_is_caught() {
        let good = b"29ABCDE1234F1ZW";
        for at in 2..14 {
            let mut changed = *good;
            changed[at] = if changed[at] == b'9' {
                b'8'
            } else if changed[at].is_ascii_digit() {
                changed[at] + 1
            } else if changed[at] == b'Z' {
                b'Y'
            } else {
                changed[at] + 1
            };
            let text = std::str::from_utf8(&changed).unwrap();
            assert!(check(text).is_err(), "{text} was accepted");
        }
    }
}
