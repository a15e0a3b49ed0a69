-- Alarms: what needs a person, one row per cause.
CREATE TABLE alarms (
	id          text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- alm_...
	kind        text NOT NULL,
	ref         text NOT NULL,
	order_id    text NOT NULL DEFAULT '',
	detail      text NOT NULL,
	created_at  timestamptz NOT NULL,
	resolved_at timestamptz
);
CREATE INDEX alarms_created_at ON alarms (created_at, id);
CREATE INDEX alarms_open ON alarms (created_at, id) WHERE resolved_at IS NULL;
