-- The `events` counter row from the start: on SQLite an event takes its position from it as
-- it is inserted, and on both backends the sequencer locks it (`notify::store`). The
-- sequencer made it at its first round before; where it did, it stays as it is.
INSERT INTO counters (name, value) VALUES ('events', 0) ON CONFLICT (name) DO NOTHING;
