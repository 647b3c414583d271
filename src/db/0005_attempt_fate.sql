-- Who decides an order's fate: the transaction that ends an order (cancel, expiry, a failed
-- payment) marks every attempt still in flight `void` in the same commit. Whatever happens
-- to such an attempt later — a late authorization, a webhook, a void that returns — carries
-- that decision out (void or refund) and never keeps the money for the order.
ALTER TABLE payments ADD COLUMN fate TEXT;
-- A gateway answer that contradicts what Till decided (the payment an order was paid with
-- reported canceled or failed) is kept here for reconciliation and people, not applied.
ALTER TABLE payments ADD COLUMN contradiction TEXT;
