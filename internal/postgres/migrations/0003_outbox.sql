-- The outbox and settings; orders gain a version for guarded updates. The
-- lists of allowed statuses and outcomes move out of the schema into the
-- orders package, which validates every write.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status <> '');
ALTER TABLE orders ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE events DROP CONSTRAINT events_outcome_check;
ALTER TABLE events ADD CONSTRAINT events_outcome_check CHECK (outcome <> '');

-- Notifications queued in the transaction of the change that causes them,
-- delivered afterwards by whichever instance claims them.
CREATE TABLE notifications (
	id              text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- ntf_...
	order_id        text COLLATE "C" NOT NULL REFERENCES orders (id),
	type            text NOT NULL,
	channel         text NOT NULL,
	recipient       text NOT NULL DEFAULT '',
	status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
	attempts        integer NOT NULL DEFAULT 0,
	last_error      text NOT NULL DEFAULT '',
	next_attempt_at timestamptz,          -- when a pending one is due; NULL otherwise
	created_at      timestamptz NOT NULL,
	delivered_at    timestamptz,
	deadline        timestamptz NOT NULL, -- retrying stops here
	claimed_by      text NOT NULL DEFAULT '',
	claimed_until   timestamptz NOT NULL DEFAULT 'epoch',
	payload         bytea NOT NULL        -- the body of every attempt
);
CREATE INDEX notifications_due ON notifications (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX notifications_order ON notifications (order_id, created_at);

-- The shop's own settings and secrets, made at first start.
CREATE TABLE settings (
	name  text COLLATE "C" PRIMARY KEY,
	value bytea NOT NULL
);
