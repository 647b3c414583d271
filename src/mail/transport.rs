//! How a message leaves: to an SMTP server (lettre, TLS through rustls with Till's roots), or
//! as an `.eml` file in a directory when no server is configured (the one-command demo).
//!
//! `TILL_SMTP_URL` forms: `smtp://host:25` (plain), `smtp://host:587?tls=required`
//! (STARTTLS, refused without it), `smtp://host:587?tls=opportunistic` (STARTTLS when the
//! server offers it), `smtps://user:pass@host:465` (implicit TLS). Credentials may be given
//! on any of them (percent-encoded); a path (`smtp://host/shop.example`) names the client in
//! `EHLO`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Longest one SMTP conversation may take (connect, TLS, every command, the data): a server
/// slower than this is treated as down and tried again later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message was not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again: a 4xx answer, a connection or TLS error, a timeout, a full disk.
    Temporary(String),
    /// Never worth trying again: a 5xx answer, an address that cannot be mailed.
    Permanent(String),
}

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Each message written whole to `<dir>/<event id>.eml`.
    Dir(PathBuf),
}

impl Transport {
    /// The SMTP transport `url` describes (see the module's doc for its forms).
    pub fn smtp(url: &str) -> anyhow::Result<Transport> {
        // The URL may carry a password: errors name its parts, never the URL itself.
        let parsed = reqwest::Url::parse(url).context("TILL_SMTP_URL is not a URL")?;
        let host = parsed
            .host_str()
            .context("TILL_SMTP_URL has no host")?
            .to_string();
        let tls_query = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls: Option<fn(TlsParameters) -> Tls> = match (parsed.scheme(), tls_query.as_deref()) {
            ("smtp", None) => None,
            ("smtp", Some("required")) => Some(Tls::Required),
            ("smtp", Some("opportunistic")) => Some(Tls::Opportunistic),
            ("smtps", None) => Some(Tls::Wrapper),
            (scheme, tls) => anyhow::bail!(
                "TILL_SMTP_URL: scheme {scheme:?} with tls={tls:?} is not one of smtp://, \
                 smtp://…?tls=required, smtp://…?tls=opportunistic, smtps://"
            ),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("TILL_SMTP_URL: {e}"))?
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(tls) = tls {
            builder = builder.tls(tls(tls_parameters(&host)?));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    /// Sends (or files) `message`, the message of event `event_id`.
    pub async fn send(&self, event_id: &str, message: Message) -> Result<(), Failure> {
        match self {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(()),
                Err(err) if err.is_permanent() => Err(Failure::Permanent(err.to_string())),
                Err(err) => Err(Failure::Temporary(error_chain(&err))),
            },
            Transport::Dir(dir) => {
                if !event_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(Failure::Permanent(format!(
                        "event id {event_id:?} cannot name a file"
                    )));
                }
                let (dir, name, bytes) =
                    (dir.clone(), format!("{event_id}.eml"), message.formatted());
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                    .await
                    .map_err(|e| Failure::Temporary(e.to_string()))?
                    .map_err(|e| Failure::Temporary(format!("writing the .eml file: {e}")))
            }
        }
    }
}

/// TLS towards `host`, trusting the system's roots and `SSL_CERT_FILE`'s (see `tls`).
fn tls_parameters(host: &str) -> anyhow::Result<TlsParameters> {
    let pems = crate::tls::root_pems();
    let mut builder = TlsParameters::builder(host.to_string());
    if !pems.is_empty() {
        builder = builder.certificate_store(CertificateStore::None);
    }
    for pem in pems {
        let certs = Certificate::from_pem(&pem).map_err(|e| anyhow::anyhow!("TLS roots: {e}"))?;
        builder = builder.add_root_certificate(certs);
    }
    builder
        .build_rustls()
        .map_err(|e| anyhow::anyhow!("TLS for {host}: {e}"))
}

/// An error with its causes, so a TLS or connection failure says what went wrong.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Writes `dir/name` whole or not at all: a temporary file, then a rename.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_understood_or_refused() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://mail.example.com:587?tls=required",
            "smtp://mail.example.com:587?tls=opportunistic",
            "smtps://user:p%40ss@mail.example.com:465",
            "smtps://mail.example.com",
        ] {
            assert!(Transport::smtp(good).is_ok(), "{good}");
        }
        for bad in [
            "http://mail.example.com",
            "smtps://mail.example.com?tls=required",
            "smtp://mail.example.com?tls=sometimes",
            "smtp://",
            "not a url",
        ] {
            assert!(Transport::smtp(bad).is_err(), "{bad}");
        }
    }
}
