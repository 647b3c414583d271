-- Authorize-then-capture gateways: which payment an order was confirmed with (only that one
-- may be captured). (This step once also added the simulator's Stripe columns; they are its
-- own migrations' now, crates/gateway-sim/migrations.)
ALTER TABLE orders ADD COLUMN paid_by TEXT;
CREATE INDEX IF NOT EXISTS orders_paid_by ON orders (paid_by);
