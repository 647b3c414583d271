-- Pricing: coupons and their uses, tax codes, and each order's and line's discount and tax.
-- A coupon's `reserved` and `confirmed` counters move only with a `coupon_uses` row's
-- compare-and-set (reserved → confirmed | released), so a repeated compensation counts
-- nothing twice; the CHECKs back the limit the conditional reservation keeps.
CREATE TABLE IF NOT EXISTS coupons (
  code TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('percent', 'fixed')),
  percent_off BIGINT, max_discount BIGINT, amount_off BIGINT, min_subtotal BIGINT,
  skus TEXT NOT NULL, starts_at BIGINT, ends_at BIGINT, active BIGINT NOT NULL,
  max_uses BIGINT, max_uses_per_customer BIGINT,
  reserved BIGINT NOT NULL DEFAULT 0, confirmed BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  CHECK (reserved >= 0), CHECK (confirmed >= 0),
  CHECK (max_uses IS NULL OR reserved + confirmed <= max_uses));
CREATE TABLE IF NOT EXISTS coupon_uses (
  order_id TEXT PRIMARY KEY, code TEXT NOT NULL, customer_id TEXT,
  state TEXT NOT NULL CHECK (state IN ('reserved', 'confirmed', 'released')),
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS coupon_uses_by_customer ON coupon_uses (code, customer_id);
CREATE TABLE IF NOT EXISTS tax_codes (
  code TEXT PRIMARY KEY, hsn TEXT, rates TEXT NOT NULL, updated_at BIGINT NOT NULL);
ALTER TABLE order_items ADD COLUMN discount BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_items ADD COLUMN hsn TEXT;
ALTER TABLE order_items ADD COLUMN tax BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_items ADD COLUMN tax_lines TEXT;
ALTER TABLE orders ADD COLUMN tax_lines TEXT;
ALTER TABLE orders ADD COLUMN coupon TEXT;
ALTER TABLE refunds ADD COLUMN taxable BIGINT;
ALTER TABLE refunds ADD COLUMN tax_lines TEXT;
