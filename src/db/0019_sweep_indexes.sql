-- The workers' sweeps, run every tick, find their rows by an index instead of reading the
-- whole table: the answered idempotency keys past the retention window (a day of keys, about
-- one a request), and the refunds waiting for the gateway.
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);
CREATE INDEX IF NOT EXISTS refunds_pending ON refunds (updated_at) WHERE status = 'pending';
