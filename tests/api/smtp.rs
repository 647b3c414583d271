//! A small SMTP server for the tests: real sockets, the commands a client sends (`EHLO`,
//! `STARTTLS` when given a TLS acceptor, `MAIL FROM`, `RCPT TO`, `DATA`, `RSET`, `NOOP`,
//! `QUIT`), every message it accepts kept whole, and a knob that answers `MAIL FROM` with a
//! chosen refusal the first N times.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// One message the server accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// Whether it came after `STARTTLS`, encrypted.
    pub secure: bool,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    /// How many more `MAIL FROM`s are refused, and with what reply.
    refusals: usize,
    refusal: String,
    /// `MAIL FROM`s seen (each a try to send one message).
    attempts: usize,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// A server on a free port that accepts everything.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_with(None).await
    }

    /// A server that offers `STARTTLS` with `tls`.
    pub async fn start_with(tls: Option<TlsAcceptor>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, serving.clone(), tls.clone()));
            }
        });
        SmtpServer { addr, shared, task }
    }

    /// `smtp://127.0.0.1:<port>` for `TILL_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Answers the next `times` `MAIL FROM`s with `reply` (e.g. `451 4.3.0 try later`).
    pub fn refuse(&self, times: usize, reply: &str) {
        let mut shared = self.shared.lock().unwrap();
        shared.refusals = times;
        shared.refusal = reply.to_string();
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The messages received, once there are `n` of them or 10 s have passed.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            if self.received().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        self.received()
    }

    /// `MAIL FROM`s seen, refused or not.
    pub fn attempts(&self) -> usize {
        self.shared.lock().unwrap().attempts
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client's connection: in plain text, then (after `STARTTLS`) encrypted.
async fn session(stream: TcpStream, shared: Arc<Mutex<Shared>>, tls: Option<TlsAcceptor>) {
    let mut plain = BufReader::new(stream);
    if plain
        .get_mut()
        .write_all(b"220 till-test ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let Some(acceptor) = tls.clone() else {
        converse(&mut plain, &shared, None).await;
        return;
    };
    if converse(&mut plain, &shared, Some(false)).await != Ended::StartTls {
        return;
    }
    // The client waits for the handshake: nothing is left in the plain buffer.
    let Ok(secure) = acceptor.accept(plain.into_inner()).await else {
        return;
    };
    converse(&mut BufReader::new(secure), &shared, Some(true)).await;
}

#[derive(PartialEq, Eq)]
enum Ended {
    Quit,
    StartTls,
}

/// Commands until `QUIT`, the connection's end, or (`tls` = `Some(false)`: offered, not yet
/// on) `STARTTLS`.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    lines: &mut BufReader<S>,
    shared: &Mutex<Shared>,
    tls: Option<bool>,
) -> Ended {
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return Ended::Quit,
            Ok(_) => {}
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            match tls {
                Some(false) => "250-till-test\r\n250-STARTTLS\r\n250 8BITMIME".to_string(),
                _ => "250-till-test\r\n250 8BITMIME".to_string(),
            }
        } else if upper == "STARTTLS" && tls == Some(false) {
            let _ = lines.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await;
            return Ended::StartTls;
        } else if upper.starts_with("MAIL FROM:") {
            let mut s = shared.lock().unwrap();
            s.attempts += 1;
            if s.refusals > 0 {
                s.refusals -= 1;
                s.refusal.clone()
            } else {
                from = address(&command["MAIL FROM:".len()..]);
                to.clear();
                "250 2.1.0 ok".to_string()
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command["RCPT TO:".len()..]));
            "250 2.1.5 ok".to_string()
        } else if upper == "DATA" {
            if lines
                .get_mut()
                .write_all(b"354 go ahead\r\n")
                .await
                .is_err()
            {
                return Ended::Quit;
            }
            let Some(data) = read_data(lines).await else {
                return Ended::Quit;
            };
            shared.lock().unwrap().received.push(Received {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
                secure: tls == Some(true),
            });
            "250 2.0.0 queued".to_string()
        } else if upper == "QUIT" {
            let _ = lines.get_mut().write_all(b"221 2.0.0 bye\r\n").await;
            return Ended::Quit;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok".to_string()
        } else {
            "502 5.5.2 command not recognized".to_string()
        };
        let answer = format!("{answer}\r\n");
        if lines.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return Ended::Quit;
        }
    }
}

/// `<a@b>` (and any parameters after it) → `a@b`.
fn address(text: &str) -> String {
    let text = text.trim();
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.split_once('>'))
        .map_or(text, |(a, _)| a);
    inner.to_string()
}

/// The lines of `DATA` up to the lone `.`, dot-unstuffed.
async fn read_data<S: AsyncRead + Unpin>(lines: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == b".\r\n" || line == b".\n" {
            return Some(data);
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
    }
}
