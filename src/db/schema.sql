-- Till schema, shared by SQLite and PostgreSQL. Times are unix milliseconds; money is integer minor units.
-- {serial_pk} is the one dialect difference, filled in by db::migrate.
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
  sku TEXT PRIMARY KEY, name TEXT NOT NULL, price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
  currency TEXT NOT NULL, tax_code TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS inventory (
  sku TEXT NOT NULL, warehouse TEXT NOT NULL,
  on_hand BIGINT NOT NULL, locked BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (sku, warehouse), CHECK (locked >= 0), CHECK (on_hand >= locked));
CREATE TABLE IF NOT EXISTS stock_ledger (
  id {serial_pk}, sku TEXT NOT NULL, warehouse TEXT NOT NULL,
  kind TEXT NOT NULL, delta BIGINT NOT NULL, order_id TEXT, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY, status TEXT NOT NULL, cancel_reason TEXT, currency TEXT NOT NULL,
  subtotal BIGINT NOT NULL, discount BIGINT NOT NULL, tax BIGINT NOT NULL, total BIGINT NOT NULL,
  customer TEXT, ship_to TEXT, secret_hash TEXT NOT NULL, fingerprint TEXT,
  invoice_number TEXT, expires_at BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  CHECK (total >= 0));
CREATE INDEX IF NOT EXISTS orders_pending_expiry ON orders (expires_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS order_items (
  order_id TEXT NOT NULL, line BIGINT NOT NULL, sku TEXT NOT NULL, qty BIGINT NOT NULL CHECK (qty > 0),
  unit_amount BIGINT NOT NULL, amount BIGINT NOT NULL, PRIMARY KEY (order_id, sku));
CREATE TABLE IF NOT EXISTS locks (
  id TEXT PRIMARY KEY, order_id TEXT NOT NULL, sku TEXT NOT NULL, warehouse TEXT NOT NULL,
  qty BIGINT NOT NULL CHECK (qty > 0), state TEXT NOT NULL CHECK (state IN ('held','released','committed')),
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS locks_by_order ON locks (order_id);
CREATE TABLE IF NOT EXISTS payments (
  id TEXT PRIMARY KEY, order_id TEXT NOT NULL, status TEXT NOT NULL, amount BIGINT NOT NULL,
  currency TEXT NOT NULL, method TEXT NOT NULL, source TEXT NOT NULL, gateway TEXT NOT NULL,
  gateway_ref TEXT, failure_code TEXT, redirect_url TEXT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (order_id);
CREATE UNIQUE INDEX IF NOT EXISTS payments_one_in_flight ON payments (order_id)
  WHERE status IN ('processing', 'requires_action');
CREATE TABLE IF NOT EXISTS refunds (
  id TEXT PRIMARY KEY, order_id TEXT NOT NULL, payment_id TEXT NOT NULL, amount BIGINT NOT NULL CHECK (amount > 0),
  status TEXT NOT NULL, reason TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS refunds_by_order ON refunds (order_id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  scope TEXT NOT NULL, idem_key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
  status_code BIGINT, body TEXT, created_at BIGINT NOT NULL, PRIMARY KEY (scope, idem_key));
CREATE TABLE IF NOT EXISTS webhook_events (
  gateway TEXT NOT NULL, event_id TEXT NOT NULL, received_at BIGINT NOT NULL, PRIMARY KEY (gateway, event_id));
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0, delivered_at BIGINT);
CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (created_at) WHERE delivered_at IS NULL;
