//! Identifiers and secrets: prefixed random ids, validated client-chosen ids and SKUs, and
//! the hashing that keeps API keys and client secrets out of the database in clear.

use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Random characters in a generated id: 24 alphanumerics are ~142 bits, unguessable.
const ID_RANDOM_LEN: usize = 24;

/// Characters of the time an id begins with: milliseconds since 1970 in base 62, enough
/// until the year 8,900.
const ID_TIME_LEN: usize = 8;

/// Base 62 in ASCII order, so ids of later milliseconds sort after earlier ones.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new id such as `ord_0qxT5kWz3kTq…`: the millisecond it was made, then the random part.
/// Ids made one after another sort one after another, so a table's or an index's new keys
/// land on its last pages instead of anywhere in it: the transactions that commit together
/// write those pages once, and fewer pages are read back to insert into.
pub fn new_id(prefix: &str) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let time: String = (0..ID_TIME_LEN as u32)
        .rev()
        .map(|place| char::from(BASE62[(millis / 62u128.pow(place) % 62) as usize]))
        .collect();
    format!("{prefix}_{time}{}", random_token(ID_RANDOM_LEN))
}

pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Lowercase hex SHA-256, for storing secrets and fingerprinting requests.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Ids of the records the saga passes around, so an order's id cannot be handed where a
/// payment's is expected. They are opaque text on the wire and in the database; where an
/// id comes from a request it needs no checking beyond "is there such a record".
macro_rules! record_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id with this record's prefix.
            pub fn generate() -> $name {
                $name(new_id($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

record_id!(
    /// An order: `ord_…`, or the id a seed client chose.
    OrderId,
    "ord"
);
record_id!(
    /// One payment attempt: `pay_…`; also the gateway idempotency key for it.
    PaymentId,
    "pay"
);
record_id!(
    /// A refund: `re_…`; also the gateway idempotency key for it.
    RefundId,
    "re"
);

/// A SKU: 1–64 of `A-Z a-z 0-9 - _ .`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Sku {
    type Error = String;
    fn try_from(s: &str) -> Result<Sku, String> {
        if valid_chars(s, 64, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
        }) {
            Ok(Sku(s.to_string()))
        } else {
            Err(format!(
                "sku must be 1-64 of A-Z a-z 0-9 - _ . (got {:?})",
                truncate(s)
            ))
        }
    }
}

/// An id chosen by a client (the seed's `order_id`) or a warehouse name: 1–64 of
/// `A-Z a-z 0-9 - _`.
pub fn check_client_id(what: &str, s: &str) -> Result<(), String> {
    if valid_chars(s, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
    }) {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 1-64 of A-Z a-z 0-9 - _ (got {:?})",
            truncate(s)
        ))
    }
}

fn valid_chars(s: &str, max: usize, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(ok)
}

/// Keeps echoed input short in error messages.
fn truncate(s: &str) -> String {
    s.chars().take(70).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_and_client_ids() {
        assert!(Sku::try_from("TEE-1.blue_x").is_ok());
        assert!(Sku::try_from("").is_err());
        assert!(Sku::try_from("a b").is_err());
        assert!(Sku::try_from("x".repeat(65).as_str()).is_err());
        assert!(check_client_id("order_id", "O123").is_ok());
        assert!(check_client_id("order_id", "O.123").is_err());
        assert!(check_client_id("order_id", "ø").is_err());
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = new_id("ord");
        assert!(a.starts_with("ord_") && a.len() == 4 + ID_TIME_LEN + ID_RANDOM_LEN);
        assert_ne!(a, new_id("ord"));
    }

    #[test]
    fn ids_sort_in_the_order_they_were_made() {
        let earlier = new_id("ord");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_id("ord");
        assert!(earlier < later, "{earlier} sorts after {later}");
        assert!(new_id("ord")[4..].starts_with(|c: char| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
