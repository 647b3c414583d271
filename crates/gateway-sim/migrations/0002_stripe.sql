-- The Stripe protocol: each payment's protocol, capture mode and metadata, and the first
-- answer to its idempotency key.
ALTER TABLE sim_payments ADD COLUMN protocol TEXT NOT NULL DEFAULT 'till';
ALTER TABLE sim_payments ADD COLUMN request_hash TEXT;
ALTER TABLE sim_payments ADD COLUMN capture_manual BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sim_payments ADD COLUMN metadata TEXT;
ALTER TABLE sim_payments ADD COLUMN first_response TEXT;
