-- The events of GET /v1/events and of every sink (broker, merchant webhooks, email, log).
-- `seq` is taken at insert, which on PostgreSQL is not commit order (a transaction that took
-- seq 7 can commit after one that took seq 8). `position` is the stream's order: given to
-- committed events only, by one sequencer at a time (under the `events` counter row), so a
-- reader paging by position never skips or repeats an event.
CREATE TABLE IF NOT EXISTS events (
  seq {serial_pk}, id TEXT NOT NULL UNIQUE, position BIGINT UNIQUE, type TEXT NOT NULL,
  data TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS events_unsequenced ON events (seq) WHERE position IS NULL;
-- How far each sink has taken the event stream.
CREATE TABLE IF NOT EXISTS sink_cursors (
  sink TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at BIGINT NOT NULL);
-- The outbox's rows were log lines, already written by its relay; events replace it.
DROP TABLE IF EXISTS outbox;
