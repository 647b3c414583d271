-- The Razorpay protocol: orders (found again by receipt) and the order each payment is on.
CREATE TABLE IF NOT EXISTS sim_rzp_orders (
  id TEXT PRIMARY KEY, receipt TEXT NOT NULL UNIQUE, amount BIGINT NOT NULL, currency TEXT NOT NULL,
  notes TEXT, created_at BIGINT NOT NULL);
ALTER TABLE sim_payments ADD COLUMN order_ref TEXT;
CREATE INDEX IF NOT EXISTS sim_payments_by_order_ref ON sim_payments (order_ref);
