//! Outbound TLS: every client Till makes (gateways, the simulator's webhooks, SMTP through
//! `root_pems`, and later merchant webhooks) speaks rustls and trusts the system's roots plus
//! those in `SSL_CERT_FILE`, so a gateway behind a private CA (or a test's own) is reached
//! without giving up the public roots. PostgreSQL's TLS is sqlx's (`sslmode=` in the URL).

use std::sync::OnceLock;
use std::time::Duration;

/// Where Linux distributions keep the system's CA bundle, most common first. Read directly
/// because rustls' platform loader stops reading the system store once `SSL_CERT_FILE` is
/// set, and Till wants both.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The environment variable naming extra trusted roots (PEM), as OpenSSL reads it.
pub const CERT_FILE_VAR: &str = "SSL_CERT_FILE";

/// The roots Till adds to every client, read once: `None` when no system bundle file was
/// found (the platform's own store is used then, as rustls reads it).
struct Roots {
    certs: Option<Vec<reqwest::Certificate>>,
    /// What could not be read, reported by `check` at start.
    problem: Option<String>,
}

fn roots() -> &'static Roots {
    static ROOTS: OnceLock<Roots> = OnceLock::new();
    ROOTS.get_or_init(load)
}

fn load() -> Roots {
    let mut problem = None;
    let mut read = |path: &str| -> Vec<reqwest::Certificate> {
        match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
        {
            Ok(certs) if !certs.is_empty() => certs,
            Ok(_) => {
                problem = Some(format!("{path} holds no PEM certificate"));
                Vec::new()
            }
            Err(err) => {
                problem = Some(format!("cannot read certificates from {path}: {err}"));
                Vec::new()
            }
        }
    };
    let system = SYSTEM_BUNDLES
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| read(p));
    let extra = std::env::var(CERT_FILE_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| read(&p));
    let certs = match (system, extra) {
        (Some(mut system), extra) => {
            system.extend(extra.unwrap_or_default());
            Some(system)
        }
        // No bundle file: rustls' platform loader, which reads SSL_CERT_FILE itself.
        (None, _) => None,
    };
    Roots { certs, problem }
}

/// At start: an `SSL_CERT_FILE` that cannot be read is a configuration error, not a silent
/// loss of the gateway it was meant for.
pub fn check() -> anyhow::Result<()> {
    match &roots().problem {
        Some(problem) => anyhow::bail!("TLS roots: {problem}"),
        None => Ok(()),
    }
}

/// A client with Till's roots and a whole-request timeout.
pub fn client(timeout: Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(certs) = &roots().certs {
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert.clone());
        }
    }
    builder
        .build()
        .expect("a client with parsed root certificates always builds")
}

/// The same roots as PEM text, for clients that are not reqwest's (SMTP): the system bundle
/// and `SSL_CERT_FILE`, each file as read (an unreadable one is `check`'s to report). Empty
/// when neither exists: the client's own default store is used then.
pub fn root_pems() -> Vec<Vec<u8>> {
    let system = SYSTEM_BUNDLES
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string());
    let extra = std::env::var(CERT_FILE_VAR).ok().filter(|p| !p.is_empty());
    system
        .into_iter()
        .chain(extra)
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}
