-- One customer may hold only so many pending orders (TILL_MAX_PENDING_PER_CUSTOMER). An
-- order carries its customer's id; a row per customer is what concurrent checkouts of that
-- customer lock, and so queue on, while they count. Orders from before this migration have
-- no customer_id and are not counted: they end within one hold TTL.
ALTER TABLE orders ADD COLUMN customer_id TEXT;
CREATE INDEX IF NOT EXISTS orders_pending_by_customer ON orders (customer_id) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS customer_checkouts (
  customer_id TEXT PRIMARY KEY, last_checkout_at BIGINT NOT NULL);
