-- The outbox, leases and settings; orders gain a version for guarded
-- updates. The lists of allowed statuses and outcomes move out of the
-- schema into the orders package, which validates every write, so new
-- states need no table rebuild: orders and events are rebuilt once here
-- without them (SQLite cannot drop a CHECK in place).
-- The events are set aside first: dropping a parent table with its
-- children still there counts a foreign key violation per child row, which
-- renaming the new table into place does not take back.
CREATE TABLE events_copy AS SELECT id, type, api_version, session_id, order_id, outcome, created_at, received_at, payload FROM events;
DROP TABLE events;

CREATE TABLE orders_v2 (
	id           TEXT PRIMARY KEY CHECK (id <> ''),
	status       TEXT NOT NULL CHECK (status <> ''),
	items        TEXT NOT NULL CHECK (json_valid(items)), -- JSON of []orders.Item
	amount_total INTEGER NOT NULL,
	currency     TEXT NOT NULL,
	session_id   TEXT UNIQUE CHECK (session_id <> ''),    -- NULL until the Checkout Session exists
	email        TEXT NOT NULL DEFAULT '',
	review       TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	paid_at      INTEGER,
	fulfilled_at INTEGER,
	version      INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO orders_v2 (id, status, items, amount_total, currency, session_id, email, review, created_at, updated_at, paid_at, fulfilled_at)
	SELECT id, status, items, amount_total, currency, session_id, email, review, created_at, updated_at, paid_at, fulfilled_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_v2 RENAME TO orders;
CREATE INDEX orders_created_at ON orders (created_at);
CREATE INDEX orders_status_created_at ON orders (status, created_at);
CREATE INDEX orders_unfulfilled ON orders (created_at, id) WHERE status = 'paid' AND fulfilled_at IS NULL;

CREATE TABLE events (
	id          TEXT PRIMARY KEY CHECK (id <> ''), -- Stripe's evt_...
	type        TEXT NOT NULL,
	api_version TEXT NOT NULL,
	session_id  TEXT NOT NULL DEFAULT '',
	order_id    TEXT REFERENCES orders (id),
	outcome     TEXT NOT NULL CHECK (outcome <> ''),
	created_at  INTEGER NOT NULL, -- when Stripe created the event
	received_at INTEGER NOT NULL, -- when we stored it
	payload     BLOB NOT NULL
) STRICT;
INSERT INTO events SELECT * FROM events_copy;
DROP TABLE events_copy;
CREATE INDEX events_order_id ON events (order_id);

-- Notifications queued in the transaction of the change that causes them,
-- delivered afterwards by the dispatcher.
CREATE TABLE notifications (
	id              TEXT PRIMARY KEY CHECK (id <> ''), -- ntf_...
	order_id        TEXT NOT NULL REFERENCES orders (id),
	type            TEXT NOT NULL,
	channel         TEXT NOT NULL,
	recipient       TEXT NOT NULL DEFAULT '',
	status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	next_attempt_at INTEGER,           -- when a pending one is due; NULL otherwise
	created_at      INTEGER NOT NULL,
	delivered_at    INTEGER,
	deadline        INTEGER NOT NULL,  -- retrying stops here
	claimed_by      TEXT NOT NULL DEFAULT '',
	claimed_until   INTEGER NOT NULL DEFAULT 0,
	payload         BLOB NOT NULL      -- the body of every attempt
) STRICT;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_order ON notifications (order_id, created_at);

-- Leases let one instance at a time run a periodic job.
CREATE TABLE leases (
	name   TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	until  INTEGER NOT NULL
) STRICT;

-- The shop's own settings and secrets, made at first start.
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
