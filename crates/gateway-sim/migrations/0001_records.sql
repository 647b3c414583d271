-- The simulator's records: payments of its own protocol (Till's key as idem_key), refunds,
-- and the webhook events it owes, due at deliver_at.
CREATE TABLE IF NOT EXISTS sim_payments (
  id TEXT PRIMARY KEY, idem_key TEXT NOT NULL UNIQUE, amount BIGINT NOT NULL, currency TEXT NOT NULL,
  method TEXT NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL, failure_code TEXT,
  refunded BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sim_refunds (
  idem_key TEXT PRIMARY KEY, payment_id TEXT NOT NULL, amount BIGINT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sim_events (
  id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, outcome TEXT NOT NULL, failure_code TEXT,
  deliver_at BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, delivered_at BIGINT);
CREATE INDEX IF NOT EXISTS sim_events_due ON sim_events (deliver_at) WHERE delivered_at IS NULL;
