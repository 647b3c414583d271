-- Customer email: one row per event that mails a customer, keyed by the event's id, so the
-- relay queues each event once (in the transaction that moves the mail sink's cursor) and
-- the sender sends each once. The message is composed when queued (what the order was
-- then); the PDF attached is read when sent. `leased_until` keeps a message one sender's
-- while it is being sent; `next_attempt_at` is when a temporary failure may be tried again.
CREATE TABLE IF NOT EXISTS mail_outbox (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, order_id TEXT NOT NULL, refund_id TEXT,
  recipient TEXT NOT NULL, subject TEXT NOT NULL, body_text TEXT NOT NULL,
  body_html TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
  attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,
  leased_until BIGINT NOT NULL DEFAULT 0, last_error TEXT, sent_at BIGINT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS mail_outbox_due ON mail_outbox (next_attempt_at)
  WHERE state = 'pending';
