-- Enough of Stripe and Razorpay for their official SDKs: partial captures (what was taken,
-- NULL meaning the whole amount), the return URL a 3-D Secure challenge goes back to,
-- refunds as objects of their own, the first answer to every Stripe idempotency key, and
-- each event's object as it stood when the event happened.
ALTER TABLE sim_payments ADD COLUMN amount_captured BIGINT;
ALTER TABLE sim_payments ADD COLUMN return_url TEXT;
ALTER TABLE sim_refunds ADD COLUMN refund_id TEXT;
ALTER TABLE sim_refunds ADD COLUMN protocol TEXT NOT NULL DEFAULT 'till';
ALTER TABLE sim_refunds ADD COLUMN reason TEXT;
ALTER TABLE sim_refunds ADD COLUMN notes TEXT;
ALTER TABLE sim_refunds ADD COLUMN receipt TEXT;
ALTER TABLE sim_refunds ADD COLUMN speed TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS sim_refunds_by_refund_id ON sim_refunds (refund_id);
CREATE INDEX IF NOT EXISTS sim_refunds_by_payment ON sim_refunds (payment_id);
CREATE TABLE IF NOT EXISTS sim_stripe_requests (
  idem_key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status_code BIGINT, body TEXT,
  created_at BIGINT NOT NULL);
ALTER TABLE sim_events ADD COLUMN object TEXT;
