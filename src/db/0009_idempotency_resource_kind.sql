-- What kind of resource an interrupted request created, so its replay needs no guessing
-- from the id's prefix.
ALTER TABLE idempotency_keys ADD COLUMN resource_kind TEXT;
