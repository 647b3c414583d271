-- Authorize-then-capture gateways: which payment an order was confirmed with (only that one
-- may be captured), and what the simulator needs to speak Stripe's protocol: the protocol of
-- each payment, its capture mode and metadata, and the first answer to its idempotency key.
ALTER TABLE orders ADD COLUMN paid_by TEXT;
ALTER TABLE sim_payments ADD COLUMN protocol TEXT NOT NULL DEFAULT 'till';
ALTER TABLE sim_payments ADD COLUMN request_hash TEXT;
ALTER TABLE sim_payments ADD COLUMN capture_manual BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sim_payments ADD COLUMN metadata TEXT;
ALTER TABLE sim_payments ADD COLUMN first_response TEXT;
CREATE INDEX IF NOT EXISTS orders_paid_by ON orders (paid_by);
