-- ../shared/bench/checkout.sql with one change: the confirming transaction also takes the
-- next invoice number from one counter row, as Till does (`counters`, `invoice/<year>`), so
-- every confirmation in the database waits its turn on that row until the one before commits.
\set sku random(1, 10000)
\set q random(1, 3)
\set buyer random(1, 1000000000)
BEGIN;
UPDATE inventory SET reserved = reserved + :q
 WHERE sku = :sku AND on_hand - reserved >= :q
RETURNING on_hand - reserved AS available \gset
INSERT INTO reservation (sku, qty, buyer) VALUES (:sku, :q, :buyer) RETURNING id AS res_id \gset
COMMIT;
BEGIN;
INSERT INTO orders (buyer, sku, qty, amount_cents, reservation_id, status)
VALUES (:buyer, :sku, :q, 1999 * :q, :res_id, 'pending') RETURNING id AS order_id \gset
INSERT INTO payment (order_id, amount_cents, status) VALUES (:order_id, 1999 * :q, 'authorized');
COMMIT;
BEGIN;
UPDATE inventory SET on_hand = on_hand - :q, reserved = reserved - :q WHERE sku = :sku;
UPDATE orders SET status = 'confirmed' WHERE id = :order_id;
INSERT INTO outbox (aggregate_id, event_type, payload)
VALUES (:order_id, 'order_confirmed', jsonb_build_object('order_id', :order_id::bigint, 'sku', :sku::bigint, 'qty', :q::int, 'buyer', :buyer::bigint));
UPDATE invoice_counter SET value = value + 1 WHERE name = 'invoice/2026-27' RETURNING value AS invoice_no \gset
COMMIT;
