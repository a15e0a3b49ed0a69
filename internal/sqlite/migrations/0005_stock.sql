-- Stock: what is left of each product with a limited stock (NULL:
-- unlimited), what open orders hold of it and what was sold; each order's
-- hold on it.
CREATE TABLE stock (
	product_id TEXT PRIMARY KEY CHECK (product_id <> ''),
	available  INTEGER CHECK (available >= 0),
	held       INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
	sold       INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0)
) STRICT;
ALTER TABLE orders ADD COLUMN hold_state TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN hold_until INTEGER;
CREATE INDEX orders_held ON orders (hold_until, id) WHERE hold_state = 'held';
