//! Merchant webhooks: endpoints a merchant registers, and the signed deliveries of the events
//! they subscribe to.
//!
//! The `webhooks` sink of the relay queues one delivery per (event, matching endpoint) in the
//! transaction that moves its cursor (`queue`), so each is queued exactly once; a sender loop
//! (`send`) then leases due deliveries, POSTs each event's JSON signed with its endpoint's
//! secret, and records every attempt. A failed attempt is retried after a random delay up to
//! `min(cap, base·2^attempt)` (full jitter) until the retry window since it was queued is
//! spent; then the delivery is `failed`.

mod filter;
pub mod routes;
pub mod send;
pub mod store;

pub use filter::Filter;
pub use send::Settings;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::AnyConnection;

use super::Event;
use crate::error::{corrupt, Error, Result};
use crate::ids::{new_id, random_token};

/// Endpoints one Till keeps at once: each event is queued once per endpoint, so this bounds
/// what one event costs; a shop needs a handful.
pub const ENDPOINTS_MAX: usize = 16;

/// The longest URL an endpoint may have (the common limit of browsers and proxies).
pub const URL_MAX: usize = 2048;

/// Random characters of a signing secret after `whsec_`: about 190 bits.
const SECRET_RANDOM_LEN: usize = 32;

/// A registered endpoint (no `Debug`: its secret must never reach a log).
#[derive(Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub filter: Filter,
    /// The signing secret; shown once, in the answer that created the endpoint, never logged.
    pub secret: String,
    pub created_at: i64,
}

impl TryFrom<store::EndpointRow> for Endpoint {
    type Error = Error;

    fn try_from(row: store::EndpointRow) -> Result<Endpoint> {
        Ok(Endpoint {
            filter: Filter::from_stored(&row.events)?,
            id: row.id,
            url: row.url,
            secret: row.secret,
            created_at: row.created_at,
        })
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its next attempt (or being sent now).
    Pending,
    /// Answered 2xx.
    Delivered,
    /// Not delivered within the retry window: given up.
    Failed,
    /// Its endpoint was deleted before it was delivered.
    Dropped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Dropped => "dropped",
        }
    }

    pub fn parse(text: &str) -> Result<Status> {
        [
            Status::Pending,
            Status::Delivered,
            Status::Failed,
            Status::Dropped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| corrupt("webhook_deliveries.status", text))
    }
}

/// Checks an endpoint URL: absolute `https://`, or `http://` to a loopback host only
/// (`localhost`, `127.0.0.0/8`, `[::1]`: a receiver on the same machine, as in development
/// and tests), at most `URL_MAX` characters, no credentials in it.
pub fn check_url(text: &str) -> Result<()> {
    if text.len() > URL_MAX {
        return Err(Error::invalid(format!(
            "url must be at most {URL_MAX} characters"
        )));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| Error::invalid(format!("url must be an absolute http(s) URL: {e}")))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(Error::invalid("url must name a host"));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Error::invalid(
                "url must be https:// (http:// only to localhost or a loopback address)",
            ))
        }
        _ => return Err(Error::invalid("url must be an absolute http(s) URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid("url must not hold credentials"));
    }
    Ok(())
}

/// A new signing secret.
pub fn new_secret() -> String {
    format!("whsec_{}", random_token(SECRET_RANDOM_LEN))
}

/// `Till-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{raw body}")>`.
pub fn signature(secret: &str, t_secs: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t_secs}.").as_bytes());
    mac.update(body);
    format!("t={t_secs},v1={:x}", mac.finalize().into_bytes())
}

/// Queues one delivery per (event, live endpoint that subscribes to its type and existed when
/// it happened), in the caller's transaction; returns how many.
pub async fn queue(conn: &mut AnyConnection, events: &[Event], now: i64) -> Result<usize> {
    let endpoints = live_endpoints(conn).await?;
    let mut queued = 0;
    for event in events {
        for endpoint in &endpoints {
            if endpoint.filter.matches(event.kind) && endpoint.created_at <= event.created_at {
                store::insert_delivery(conn, &new_id("whd"), &endpoint.id, &event.id, now).await?;
                queued += 1;
            }
        }
    }
    Ok(queued)
}

/// Registers an endpoint with a new secret, unless `ENDPOINTS_MAX` are registered already.
pub async fn create_endpoint(
    conn: &mut AnyConnection,
    url: &str,
    filter: Filter,
    now: i64,
) -> Result<Endpoint> {
    if store::live_endpoints(conn).await?.len() >= ENDPOINTS_MAX {
        return Err(Error::Conflict {
            code: "too_many_webhook_endpoints",
            message: format!(
                "{ENDPOINTS_MAX} webhook endpoints are registered already; delete one first"
            ),
        });
    }
    let endpoint = Endpoint {
        id: new_id("we"),
        url: url.to_string(),
        filter,
        secret: new_secret(),
        created_at: now,
    };
    let row = store::EndpointRow {
        id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        events: endpoint.filter.stored(),
        secret: endpoint.secret.clone(),
        created_at: now,
    };
    store::insert_endpoint(conn, &row).await?;
    Ok(endpoint)
}

/// A delivery with every attempt made so far.
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub status: Status,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub attempts: Vec<store::AttemptRow>,
}

/// The latest `limit` deliveries to an endpoint, newest first.
pub async fn deliveries(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let mut out = Vec::new();
    for row in store::deliveries(conn, endpoint_id, limit).await? {
        out.push(Delivery {
            status: Status::parse(&row.status)?,
            attempts: store::attempts(conn, &row.id).await?,
            id: row.id,
            event_id: row.event_id,
            next_attempt_at: row.next_attempt_at,
            created_at: row.created_at,
        });
    }
    Ok(out)
}

/// Queues `event` again, due now, to `only` (which must subscribe to its type) or else to
/// every endpoint that does; returns the new deliveries with their endpoints' ids.
pub async fn redeliver(
    conn: &mut AnyConnection,
    event: &Event,
    only: Option<&str>,
    now: i64,
) -> Result<Vec<(String, Delivery)>> {
    let targets = match only {
        Some(id) => {
            let endpoint = endpoint(conn, id)
                .await?
                .ok_or(Error::NotFound("webhook endpoint"))?;
            if !endpoint.filter.matches(event.kind) {
                return Err(Error::invalid(format!(
                    "endpoint {id} does not subscribe to {}",
                    event.kind.as_str()
                )));
            }
            vec![endpoint]
        }
        None => live_endpoints(conn)
            .await?
            .into_iter()
            .filter(|e| e.filter.matches(event.kind))
            .collect(),
    };
    let mut queued = Vec::new();
    for endpoint in targets {
        let id = new_id("whd");
        store::insert_delivery(conn, &id, &endpoint.id, &event.id, now).await?;
        let delivery = Delivery {
            id,
            event_id: event.id.clone(),
            status: Status::Pending,
            next_attempt_at: Some(now),
            created_at: now,
            attempts: Vec::new(),
        };
        queued.push((endpoint.id, delivery));
    }
    Ok(queued)
}

/// Every endpoint not deleted, oldest first.
pub async fn live_endpoints(conn: &mut AnyConnection) -> Result<Vec<Endpoint>> {
    store::live_endpoints(conn)
        .await?
        .into_iter()
        .map(Endpoint::try_from)
        .collect()
}

/// One endpoint not deleted.
pub async fn endpoint(conn: &mut AnyConnection, id: &str) -> Result<Option<Endpoint>> {
    store::endpoint(conn, id)
        .await?
        .map(Endpoint::try_from)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        let check = |url: &str, ok: bool| assert_eq!(check_url(url).is_ok(), ok, "{url}");
        check("https://shop.example/hooks", true);
        check("https://shop.example:8443/hooks?x=1", true);
        check("http://127.0.0.1:9000/hooks", true);
        check("http://localhost/hooks", true);
        check("http://[::1]:8080/", true);
        check("http://shop.example/hooks", false);
        check("http://10.0.0.1/hooks", false);
        check("ftp://shop.example/", false);
        check("shop.example/hooks", false);
        check("/hooks", false);
        check("", false);
        check("https://user:pw@shop.example/", false);
        check(
            &format!("https://shop.example/{}", "a".repeat(URL_MAX)),
            false,
        );
    }

    #[test]
    fn signatures_are_hmac_over_timestamp_and_body() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently.
        let header = signature("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(
            header,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_ne!(header, signature("whsec_other", 1_700_000_000, b"{}"));
        assert_ne!(header, signature("whsec_test", 1_700_000_001, b"{}"));
    }
}
