-- Stock: what is left of each product with a limited stock (NULL:
-- unlimited), what open orders hold of it and what was sold; each order's
-- hold on it.
CREATE TABLE stock (
	product_id text COLLATE "C" PRIMARY KEY CHECK (product_id <> ''),
	available  bigint CHECK (available >= 0),
	held       bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
	sold       bigint NOT NULL DEFAULT 0 CHECK (sold >= 0)
);
ALTER TABLE orders ADD COLUMN hold_state text NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN hold_until timestamptz;
CREATE INDEX orders_held ON orders (hold_until, id) WHERE hold_state = 'held';
