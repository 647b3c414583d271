-- A sink that hands events on (the log, RabbitMQ) is held by one relay at a time: a pass
-- takes the sink's cursor row for `leased_until` (owner `leased_by`), publishes, moves the
-- cursor and lets go. With several worker instances each event is published once per id;
-- an instance killed mid-pass holds the sink until its lease runs out, then another goes on.
ALTER TABLE sink_cursors ADD COLUMN leased_by TEXT;
ALTER TABLE sink_cursors ADD COLUMN leased_until BIGINT NOT NULL DEFAULT 0;
