//! Customer email: the message (text and HTML, PDFs attached) and the way it leaves — an
//! SMTP server (`TILL_SMTP_URL`) or, without one, `.eml` files in `TILL_MAIL_DIR`. Its
//! queue is `store.rs`; the relay (`relay::mail`) fills it from the event stream and runs
//! the sender, since what a message says comes from orders, payments and documents, which
//! this module does not know.
//!
//! A message's `Message-ID` is derived from its event's id, so a message sent again (a crash
//! between the server's "250 OK" and the row marked sent) is the same message to the
//! receiver, who drops the copy.

pub mod store;
mod transport;

use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Attachment as Part, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::error::{corrupt, Error, Result};

pub use transport::{Failure, Transport};

/// Where a queued message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting to be sent, or to be tried again after a temporary failure.
    Pending,
    /// The server took it (or its `.eml` file was written).
    Sent,
    /// Refused for good (5xx), or tried `ATTEMPTS_MAX` times.
    Failed,
}

impl State {
    pub const ALL: [State; 3] = [State::Pending, State::Sent, State::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sent => "sent",
            State::Failed => "failed",
        }
    }
}

impl TryFrom<&str> for State {
    type Error = Error;
    fn try_from(s: &str) -> Result<State> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| corrupt("mail_outbox.state", s))
    }
}

/// Tries of one message before a temporary failure counts as permanent: with the backoff
/// capped at `RETRY_DELAY_MAX`, about a day of a mail server being down.
pub const ATTEMPTS_MAX: i64 = 30;

/// The longest wait between two tries of one message.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(3600);

/// The wait before try `attempts + 1` after `attempts` failed ones: exponential from `base`,
/// capped at `RETRY_DELAY_MAX`, jittered (`random` picks the point in [cap/2, cap]) so
/// messages that failed together do not all come back together.
pub fn retry_delay_ms(base_ms: u64, attempts: i64, random: u64) -> i64 {
    let exponent = attempts.clamp(0, 30) as u32;
    let cap = base_ms
        .saturating_mul(1u64 << exponent)
        .min(RETRY_DELAY_MAX.as_millis() as u64);
    let half = cap / 2;
    (half + random % (cap - half + 1)) as i64
}

/// A file attached to a message.
pub struct Attachment {
    /// As the customer sees it, e.g. `invoice-INV-2026-27-000001.pdf`.
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// One message, as composed for one event.
pub struct Letter<'a> {
    /// The event's id: the message's `Message-ID` is `<{event_id}@till>`.
    pub event_id: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// When the event happened (unix ms): the message's `Date`, so a resend is identical.
    pub date_ms: i64,
    pub attachments: Vec<Attachment>,
}

/// Who the messages come from, and how they leave.
pub struct Mailer {
    pub from: Mailbox,
    pub transport: Transport,
    /// The first retry's wait; each later one doubles it (`TILL_MAIL_RETRY_BASE_MS`).
    pub retry_base_ms: u64,
}

impl Mailer {
    /// From the settings: `smtp_url` (none: files in `dir`), the sender address.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        dir: &str,
        retry_base_ms: u64,
    ) -> anyhow::Result<Mailer> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("TILL_MAIL_FROM {from:?} is not an address: {e}"))?;
        let transport = match smtp_url.filter(|u| !u.is_empty()) {
            Some(url) => Transport::smtp(url)?,
            None => Transport::Dir(dir.into()),
        };
        Ok(Mailer {
            from,
            transport,
            retry_base_ms: retry_base_ms.max(1),
        })
    }

    /// The message for `letter`; an address that cannot be mailed is a permanent failure.
    pub fn message(&self, letter: Letter<'_>) -> std::result::Result<Message, Failure> {
        let to: Mailbox = letter.to.parse().map_err(|e| {
            Failure::Permanent(format!("recipient {:?} is not an address: {e}", letter.to))
        })?;
        let body =
            MultiPart::alternative_plain_html(letter.text.to_string(), letter.html.to_string());
        let body = letter
            .attachments
            .into_iter()
            .fold(MultiPart::mixed().multipart(body), |mixed, a| {
                mixed.singlepart(attachment(a))
            });
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject)
            .message_id(Some(message_id(letter.event_id)))
            .date(SystemTime::UNIX_EPOCH + Duration::from_millis(letter.date_ms.max(0) as u64))
            .multipart(body)
            .map_err(|e| Failure::Permanent(format!("message cannot be built: {e}")))
    }

    /// Sends (or files) the message of event `event_id`.
    pub async fn send(&self, event_id: &str, message: Message) -> std::result::Result<(), Failure> {
        self.transport.send(event_id, message).await
    }
}

fn attachment(a: Attachment) -> SinglePart {
    let content_type = ContentType::parse(a.content_type).unwrap_or(ContentType::TEXT_PLAIN);
    Part::new(a.filename).body(a.bytes, content_type)
}

/// `<evt_…@till>`: the same for every send of one event's message.
pub fn message_id(event_id: &str) -> String {
    format!("<{event_id}@till>")
}

/// Text made safe inside HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let check = |attempts, random, expected| {
            assert_eq!(
                retry_delay_ms(1000, attempts, random),
                expected,
                "{attempts} {random}"
            );
        };
        check(0, 0, 500);
        check(0, 500, 1000);
        check(0, 501, 500);
        check(1, 0, 1000);
        check(3, 1000, 5000);
        check(40, 0, 1_800_000);
        check(40, 1_800_000, 3_600_000);
        assert_eq!(retry_delay_ms(0, 0, 7), 0);
    }

    #[test]
    fn states_read_back_and_nothing_else_does() {
        for s in State::ALL {
            assert_eq!(State::try_from(s.as_str()).unwrap(), s);
        }
        assert!(State::try_from("queued").is_err());
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<b>"Tom" & 'Jerry'</b>"#),
            "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn a_message_has_text_html_attachment_and_the_events_message_id() {
        let mailer = Mailer::new(None, "Till <orders@localhost>", "/nonexistent", 10).unwrap();
        let letter = Letter {
            event_id: "evt_abc",
            to: "buyer@example.com",
            subject: "Order ord_1 confirmed — invoice INV/2026-27/000001",
            text: "plain body",
            html: "<p>html body</p>",
            date_ms: 1_780_000_000_000,
            attachments: vec![Attachment {
                filename: "invoice.pdf".into(),
                content_type: "application/pdf",
                bytes: b"%PDF-1.4 test".to_vec(),
            }],
        };
        let raw = String::from_utf8(mailer.message(letter).unwrap().formatted()).unwrap();
        for expected in [
            "Message-ID: <evt_abc@till>",
            "To: buyer@example.com",
            "From: Till <orders@localhost>",
            "multipart/mixed",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "application/pdf",
            "filename=\"invoice.pdf\"",
        ] {
            assert!(raw.contains(expected), "{expected} missing in\n{raw}");
        }
        let bad = Letter {
            event_id: "evt_abc",
            to: "not an address",
            subject: "s",
            text: "t",
            html: "h",
            date_ms: 0,
            attachments: vec![],
        };
        assert!(matches!(mailer.message(bad), Err(Failure::Permanent(_))));
    }
}
