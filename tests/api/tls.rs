//! TLS on the way out: the gateway adapters reach an HTTPS gateway, and customer email an
//! `smtps://` server (and one that offers STARTTLS, for `?tls=required`), whose certificate
//! comes from a private CA given by `SSL_CERT_FILE` (and refuse it without), and PostgreSQL
//! is reached with `sslmode=require`.
//!
//! Over 400 lines: the private CA, the TLS proxy and the `till serve` process they front are
//! one harness; each protocol's test (HTTPS, smtps, STARTTLS, PostgreSQL) uses all of it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use till::Workers;

use crate::helpers::{Backend, TestApp, API_KEY};

const SK: &str = "sk_test_tls";
const WHSEC: &str = "whsec_tls";

/// A throwaway CA and a certificate it signed for 127.0.0.1, made with the `openssl` tool.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("till-tls-{}", till::ids::random_token(8)));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the openssl tool is needed for the TLS tests");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Till test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        Pki { dir }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS server side with the certificate `pki` made for 127.0.0.1.
fn acceptor(pki: &Pki) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.dir.join("server.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(pki.dir.join("server.key")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Terminates TLS on a free port and passes the plain bytes to `upstream`: the gateway
/// simulator behind HTTPS, as the real gateways are.
pub(crate) async fn tls_proxy(pki: &Pki, upstream: SocketAddr) -> SocketAddr {
    let acceptor = acceptor(pki);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn wait_for_port(port: u16) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

/// A child process killed when the test ends, however it ends.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `till serve` as its own process, its Stripe adapter at `stripe_url`; `ca` is its
/// `SSL_CERT_FILE`. Returns the process, its URL, and the file its log goes to.
async fn serve(dir: &Path, stripe_url: &str, ca: Option<&Path>) -> (Proc, String, PathBuf) {
    let stripe = [
        ("TILL_CARD_GATEWAY", "stripe"),
        ("TILL_GATEWAY_STRIPE_URL", stripe_url),
        ("TILL_STRIPE_SECRET_KEY", SK),
        ("TILL_STRIPE_WEBHOOK_SECRET", WHSEC),
    ];
    serve_with(dir, &stripe, ca).await
}

/// `till serve` as its own process with the settings `env` on top of a fresh SQLite
/// database; `ca` is its `SSL_CERT_FILE`. Returns the process, its URL, and its log file.
pub(crate) async fn serve_with(
    dir: &Path,
    env: &[(&str, &str)],
    ca: Option<&Path>,
) -> (Proc, String, PathBuf) {
    let port = free_port();
    let log = dir.join(format!("till-{port}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_till"));
    cmd.arg("serve")
        .env("TILL_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TILL_DATABASE_URL",
            format!("sqlite://{}", dir.join(format!("till-{port}.db")).display()),
        )
        .env("TILL_API_KEY", API_KEY)
        .env("TILL_WORKER_TICK_MS", "50")
        .env("RUST_LOG", "till=info")
        .env("TILL_MAIL_DIR", dir.join("mail"))
        .env_remove(till::tls::CERT_FILE_VAR)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(ca) = ca {
        cmd.env(till::tls::CERT_FILE_VAR, ca);
    }
    let child = Proc(cmd.spawn().unwrap());
    wait_for_port(port).await;
    (child, format!("http://127.0.0.1:{port}"), log)
}

pub(crate) async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut req = http
        .request(method, url)
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", till::ids::random_token(12));
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// `/readyz`'s word on the Stripe gateway, once the first probe has answered.
async fn stripe_health(http: &reqwest::Client, till: &str) -> String {
    for _ in 0..200 {
        let ready = call(http, reqwest::Method::GET, format!("{till}/readyz"), None).await;
        if let Some(health) = ready["gateways"]["stripe"].as_str() {
            return health.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Stripe gateway was never probed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_over_https_with_a_private_ca_from_ssl_cert_file() {
    let pki = Pki::new();
    let sim_port = free_port();
    let till_port_for_webhooks = free_port();
    let _sim = Proc(
        Command::new(env!("CARGO_BIN_EXE_till"))
            .arg("gateway-sim")
            .env("TILL_SIM_LISTEN", format!("127.0.0.1:{sim_port}"))
            .env(
                "TILL_SIM_TILL_URL",
                format!("http://127.0.0.1:{till_port_for_webhooks}"),
            )
            .env(
                "TILL_SIM_DATABASE_URL",
                format!("sqlite://{}", pki.dir.join("sim.db").display()),
            )
            .env("TILL_STRIPE_SECRET_KEY", SK)
            .env("TILL_STRIPE_WEBHOOK_SECRET", WHSEC)
            .env("TILL_RAZORPAY_KEY_ID", "rzp_test_tls")
            .env("TILL_RAZORPAY_KEY_SECRET", "rzp_secret_tls")
            .env("TILL_RAZORPAY_WEBHOOK_SECRET", "rzp_whsec_tls")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(sim_port).await;
    let https = tls_proxy(&pki, format!("127.0.0.1:{sim_port}").parse().unwrap()).await;
    let stripe_url = format!("https://127.0.0.1:{}/sim/stripe", https.port());
    let http = reqwest::Client::new();

    // With the CA trusted: the probe passes and a card payment is authorized and captured.
    let (_till, till, _) = serve(&pki.dir, &stripe_url, Some(&pki.ca())).await;
    assert_eq!(stripe_health(&http, &till).await, "ok");
    call(&http, reqwest::Method::PUT, format!("{till}/v1/products/TEE-1"),
         Some(json!({"name": "Tee", "price": {"amount": 49900, "currency": "INR"}, "tax_code": "apparel"}))).await;
    call(
        &http,
        reqwest::Method::PUT,
        format!("{till}/v1/inventory/TEE-1/warehouses/blr-1"),
        Some(json!({"on_hand": 5})),
    )
    .await;
    let order = call(
        &http,
        reqwest::Method::POST,
        format!("{till}/v1/orders"),
        Some(json!({"customer": {"id": "u_1"}, "items": [{"sku": "TEE-1", "qty": 1}]})),
    )
    .await;
    let id = order["id"].as_str().unwrap();
    let payment = call(
        &http,
        reqwest::Method::POST,
        format!("{till}/v1/orders/{id}/payments"),
        Some(json!({"method": "card", "source": "pm_card_visa"})),
    )
    .await;
    assert_eq!(payment["status"], "succeeded", "{payment}");

    // Without it: the certificate is refused, /readyz says why, and no payment goes through.
    let (_untrusting, till, log) = serve(&pki.dir, &stripe_url, None).await;
    let health = stripe_health(&http, &till).await;
    assert!(
        health.starts_with("unreachable") && health.contains("certificate"),
        "{health}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("gateway probe failed") && logged.contains("certificate"),
        "{logged}"
    );
}

/// A confirmed order of `customer`'s at the Till serving at `till` (the embedded simulator
/// takes the card).
async fn paid_order(http: &reqwest::Client, till: &str, customer: Value) {
    call(http, reqwest::Method::PUT, format!("{till}/v1/products/TEE-1"),
         Some(json!({"name": "Tee", "price": {"amount": 49900, "currency": "INR"}, "tax_code": "apparel"}))).await;
    call(
        http,
        reqwest::Method::PUT,
        format!("{till}/v1/inventory/TEE-1/warehouses/blr-1"),
        Some(json!({"on_hand": 5})),
    )
    .await;
    let order = call(
        http,
        reqwest::Method::POST,
        format!("{till}/v1/orders"),
        Some(json!({"customer": customer, "items": [{"sku": "TEE-1", "qty": 1}]})),
    )
    .await;
    let id = order["id"].as_str().unwrap();
    let payment = call(
        http,
        reqwest::Method::POST,
        format!("{till}/v1/orders/{id}/payments"),
        Some(json!({"method": "card", "source": "pm_card_visa"})),
    )
    .await;
    assert_eq!(payment["status"], "succeeded", "{payment}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_smtps_with_a_private_ca_from_ssl_cert_file() {
    let pki = Pki::new();
    let server = crate::smtp::SmtpServer::start().await;
    let smtps = tls_proxy(&pki, server.addr).await;
    let url = format!("smtps://127.0.0.1:{}", smtps.port());
    let settings = [
        ("TILL_SMTP_URL", url.as_str()),
        ("TILL_MAIL_FROM", "Shop <shop@example.com>"),
    ];
    let http = reqwest::Client::new();

    // With the CA trusted: the confirmation goes out over implicit TLS.
    let (_till, till, _) = serve_with(&pki.dir, &settings, Some(&pki.ca())).await;
    paid_order(&http, &till, json!({"email": "asha@example.com"})).await;
    let received = server.wait_for(1).await;
    assert_eq!(received.len(), 1, "the confirmation arrived over TLS");
    assert_eq!(
        (received[0].from.as_str(), received[0].to.as_slice()),
        ("shop@example.com", &["asha@example.com".to_string()][..])
    );

    // Without it: the certificate is refused, nothing is sent, the message waits its retry.
    let (_untrusting, till, log) = serve_with(&pki.dir, &settings, None).await;
    paid_order(&http, &till, json!({"email": "ravi@example.com"})).await;
    let mut logged = String::new();
    for _ in 0..400 {
        logged = std::fs::read_to_string(&log).unwrap();
        if logged.contains("email not sent; trying again later") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        logged.contains("email not sent; trying again later"),
        "{logged}"
    );
    assert!(logged.contains("certificate"), "{logged}");
    assert_eq!(server.received().len(), 1, "nothing more arrived");
    let metrics = http
        .get(format!("{till}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("till_mail_messages{state=\"pending\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_required_starttls() {
    let pki = Pki::new();
    let server = crate::smtp::SmtpServer::start_with(Some(acceptor(&pki))).await;
    let url = format!("smtp://127.0.0.1:{}?tls=required", server.addr.port());
    let http = reqwest::Client::new();
    let (_till, till, log) = serve_with(
        &pki.dir,
        &[("TILL_SMTP_URL", url.as_str())],
        Some(&pki.ca()),
    )
    .await;
    paid_order(&http, &till, json!({"email": "asha@example.com"})).await;
    let received = server.wait_for(1).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(received.len(), 1, "the confirmation arrived: {logged}");
    assert!(received[0].secure, "sent after STARTTLS, encrypted");
    assert_eq!(received[0].to, ["asha@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_checkout_over_sslmode_require() {
    let app = TestApp::spawn_with(Backend::Postgres, Workers::Manual, |cfg| {
        let joiner = if cfg.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        cfg.database_url = format!("{}{joiner}sslmode=require", cfg.database_url);
    })
    .await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    assert_eq!(
        app.pay(&id, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&app.state().db.pool)
            .await
            .unwrap();
    assert!(encrypted, "the connection is not encrypted");
    app.finish().await;
}
