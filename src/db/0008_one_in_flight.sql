-- One attempt in flight per order, `authorized` included (the code has always counted it
-- in flight; the index said otherwise).
DROP INDEX IF EXISTS payments_one_in_flight;
CREATE UNIQUE INDEX payments_one_in_flight ON payments (order_id)
  WHERE status IN ('processing', 'requires_action', 'authorized');
