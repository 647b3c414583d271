-- Tax documents as issued: an order's invoice and each refund's credit note, their JSON
-- kept whole and never updated, so later edits of settings or products leave them alone.
CREATE TABLE IF NOT EXISTS documents (
  kind TEXT NOT NULL CHECK (kind IN ('invoice', 'credit_note')), number TEXT NOT NULL,
  order_id TEXT NOT NULL, refund_id TEXT, issued_at BIGINT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (kind, number));
CREATE UNIQUE INDEX IF NOT EXISTS documents_one_invoice_per_order ON documents (order_id)
  WHERE kind = 'invoice';
CREATE UNIQUE INDEX IF NOT EXISTS documents_one_note_per_refund ON documents (refund_id)
  WHERE refund_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_by_order ON documents (order_id);
