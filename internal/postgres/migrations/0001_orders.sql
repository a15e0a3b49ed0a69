-- Orders and the Stripe events applied to them: the same tables as the SQLite
-- store's, in PostgreSQL types. Times are timestamptz (an instant, kept to the
-- microsecond); ids compare bytewise (COLLATE "C") whatever the database's
-- locale, so "newest first, then greater id first" sorts as in SQLite.
CREATE TABLE orders (
	id           text COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	status       text NOT NULL CHECK (status IN ('pending', 'processing', 'paid', 'failed', 'expired', 'needs_review')),
	items        jsonb NOT NULL CHECK (jsonb_typeof(items) IN ('array', 'null')), -- []orders.Item
	amount_total bigint NOT NULL,
	currency     text NOT NULL,
	session_id   text COLLATE "C" UNIQUE CHECK (session_id <> ''), -- NULL until the Checkout Session exists
	email        text NOT NULL DEFAULT '',
	review       text NOT NULL DEFAULT '',
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	paid_at      timestamptz,
	fulfilled_at timestamptz
);

CREATE INDEX orders_created_at ON orders (created_at, id);
CREATE INDEX orders_status_created_at ON orders (status, created_at, id);
-- Unfulfilled's work list: small, since an order leaves it once fulfilled.
CREATE INDEX orders_unfulfilled ON orders (created_at, id) WHERE status = 'paid' AND fulfilled_at IS NULL;

CREATE TABLE events (
	id          text COLLATE "C" PRIMARY KEY CHECK (id <> ''), -- Stripe's evt_...
	type        text NOT NULL,
	api_version text NOT NULL,
	session_id  text NOT NULL DEFAULT '',
	order_id    text COLLATE "C" REFERENCES orders (id),
	outcome     text NOT NULL CHECK (outcome IN ('applied', 'ignored', 'unmatched')),
	created_at  timestamptz NOT NULL, -- when Stripe created the event
	received_at timestamptz NOT NULL, -- when we stored it
	payload     bytea NOT NULL        -- the body byte for byte, as signed
);

CREATE INDEX events_order_id ON events (order_id);
