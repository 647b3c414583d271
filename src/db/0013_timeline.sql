-- The timeline: every step of an order's checkout, written in the transaction of the step it
-- records (or right after a gateway call), so an entry exists if and only if its step
-- happened. The serial key is the order of the entries; `at` is unix ms; `detail` is JSON.
CREATE TABLE IF NOT EXISTS timeline (
  id {serial_pk}, order_id TEXT NOT NULL, at BIGINT NOT NULL, kind TEXT NOT NULL,
  detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS timeline_by_order ON timeline (order_id, id);
