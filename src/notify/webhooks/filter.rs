//! Which event types an endpoint receives: a list of known types, or `*` for all.

use crate::error::{corrupt, Error, Result};
use crate::notify::Type;

/// The event types an endpoint receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `["*"]`: every type, those added later included.
    All,
    /// These types only (no duplicates, in the order given).
    Only(Vec<Type>),
}

impl Filter {
    /// The filter of a request's `events`: a non-empty list of known types, or `["*"]`.
    pub fn parse(events: &[String]) -> Result<Filter> {
        if events.is_empty() {
            return Err(Error::invalid("events must list at least one event type"));
        }
        if events.iter().any(|e| e == "*") {
            return match events.len() {
                1 => Ok(Filter::All),
                _ => Err(Error::invalid("events: \"*\" stands alone")),
            };
        }
        let mut types = Vec::new();
        for name in events {
            let kind = Type::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Type::ALL.iter().map(|t| t.as_str()).collect();
                Error::invalid(format!(
                    "events: {name:?} is not an event type (one of {}, or \"*\")",
                    known.join(", ")
                ))
            })?;
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        Ok(Filter::Only(types))
    }

    pub fn matches(&self, kind: Type) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(types) => types.contains(&kind),
        }
    }

    /// The names as the API shows them: `["*"]` or the types.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Filter::All => vec!["*"],
            Filter::Only(types) => types.iter().map(|t| t.as_str()).collect(),
        }
    }

    /// As stored: the names joined by commas.
    pub(super) fn stored(&self) -> String {
        self.names().join(",")
    }

    pub(super) fn from_stored(text: &str) -> Result<Filter> {
        let names: Vec<String> = text.split(',').map(str::to_string).collect();
        Filter::parse(&names).map_err(|_| corrupt("webhook_endpoints.events", text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filters_take_known_types_or_a_lone_star() {
        let check = |input: &[&str], expected: Option<Filter>| {
            assert_eq!(Filter::parse(&names(input)).ok(), expected, "{input:?}");
        };
        check(&["*"], Some(Filter::All));
        check(
            &["order.confirmed", "order.confirmed", "refund.succeeded"],
            Some(Filter::Only(vec![
                Type::OrderConfirmed,
                Type::RefundSucceeded,
            ])),
        );
        check(&[], None);
        check(&["*", "order.confirmed"], None);
        check(&["order.shipped"], None);
        check(&[""], None);
        let only = Filter::parse(&names(&["payment.failed"])).unwrap();
        assert!(only.matches(Type::PaymentFailed) && !only.matches(Type::OrderCreated));
        assert_eq!(Filter::from_stored(&only.stored()).unwrap(), only);
        assert_eq!(Filter::from_stored("*").unwrap(), Filter::All);
        assert!(Filter::from_stored("order.shipped").is_err());
    }
}
