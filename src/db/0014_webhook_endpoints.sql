-- Merchant webhooks. An endpoint's `secret` is kept as it was given out: Till signs every
-- delivery with it (HMAC-SHA256), so it must be recoverable, and Till holds no key of its own
-- that a reader of the database would lack. `events` is `*` or a comma-separated list of
-- event types. A deleted endpoint keeps its row (`deleted_at`) so its deliveries stay whole.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
  id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
  created_at BIGINT NOT NULL, deleted_at BIGINT);
-- One row per (event, endpoint) to send, queued in the transaction that moves the
-- `webhooks` sink's cursor, or by a redelivery. `leased_until`: a sender holds it until then.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
  event_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dropped')),
  attempts BIGINT NOT NULL CHECK (attempts >= 0), next_attempt_at BIGINT,
  leased_until BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_of_endpoint
  ON webhook_deliveries (endpoint_id, created_at);
-- Every try of a delivery: the answer's status code, or what went wrong.
CREATE TABLE IF NOT EXISTS webhook_attempts (
  delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id), attempt BIGINT NOT NULL,
  at BIGINT NOT NULL, status_code BIGINT, error TEXT, duration_ms BIGINT NOT NULL,
  PRIMARY KEY (delivery_id, attempt));
