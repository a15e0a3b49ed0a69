-- Alarms: what needs a person, one row per cause.
CREATE TABLE alarms (
	id          TEXT PRIMARY KEY CHECK (id <> ''), -- alm_...
	kind        TEXT NOT NULL,
	ref         TEXT NOT NULL,
	order_id    TEXT NOT NULL DEFAULT '',
	detail      TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	resolved_at INTEGER
) STRICT;
CREATE INDEX alarms_created_at ON alarms (created_at, id);
CREATE INDEX alarms_open ON alarms (created_at, id) WHERE resolved_at IS NULL;
