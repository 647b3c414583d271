-- Authorize-then-capture gateways: which payment an order was confirmed with (only that one
-- may be captured), and the simulator's wire protocol per payment.
ALTER TABLE orders ADD COLUMN paid_by TEXT;
ALTER TABLE sim_payments ADD COLUMN protocol TEXT NOT NULL DEFAULT 'till';
ALTER TABLE sim_payments ADD COLUMN request_hash TEXT;
ALTER TABLE sim_payments ADD COLUMN captured BIGINT NOT NULL DEFAULT 0;
