-- Orders and the Stripe events applied to them. Times are INTEGER unix
-- microseconds, UTC.
CREATE TABLE orders (
	id           TEXT PRIMARY KEY CHECK (id <> ''),
	status       TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'paid', 'failed', 'expired', 'needs_review')),
	items        TEXT NOT NULL CHECK (json_valid(items)), -- JSON of []orders.Item
	amount_total INTEGER NOT NULL,
	currency     TEXT NOT NULL,
	session_id   TEXT UNIQUE CHECK (session_id <> ''),    -- NULL until the Checkout Session exists
	email        TEXT NOT NULL DEFAULT '',
	review       TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	paid_at      INTEGER,
	fulfilled_at INTEGER
) STRICT;

CREATE INDEX orders_created_at ON orders (created_at);
CREATE INDEX orders_status_created_at ON orders (status, created_at);

CREATE TABLE events (
	id          TEXT PRIMARY KEY CHECK (id <> ''), -- Stripe's evt_...
	type        TEXT NOT NULL,
	api_version TEXT NOT NULL,
	session_id  TEXT NOT NULL DEFAULT '',
	order_id    TEXT REFERENCES orders (id),
	outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'ignored', 'unmatched')),
	created_at  INTEGER NOT NULL, -- when Stripe created the event
	received_at INTEGER NOT NULL, -- when we stored it
	payload     BLOB NOT NULL
) STRICT;

CREATE INDEX events_order_id ON events (order_id);
