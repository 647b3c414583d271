//! A small SMTP server for the tests: real sockets, the commands a client sends (`EHLO`,
//! `MAIL FROM`, `RCPT TO`, `DATA`, `RSET`, `NOOP`, `QUIT`), every message it accepts kept
//! whole, and a knob that answers `MAIL FROM` with a chosen refusal the first N times.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One message the server accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, serving.clone()));
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

/// One client's conversation.
async fn session(stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 till-test ESMTP\r\n").await.is_err() {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250-till-test\r\n250-8BITMIME\r\n250 SMTPUTF8".to_string()
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
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let Some(data) = read_data(&mut lines).await else {
                return;
            };
            shared.lock().unwrap().received.push(Received {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            "250 2.0.0 queued".to_string()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok".to_string()
        } else {
            "502 5.5.2 command not recognized".to_string()
        };
        if write
            .write_all(format!("{answer}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
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
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<u8>> {
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
