-- A request whose effect spans several transactions (a payment) records what it created in
-- the first one, so a retry after a crash answers with that resource instead of redoing it.
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;
