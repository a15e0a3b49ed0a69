-- Leases let one of several shop instances run a periodic job (reconciliation)
-- at a time: a holder keeps a named lease until it expires.
CREATE TABLE leases (
	name   text COLLATE "C" PRIMARY KEY,
	holder text NOT NULL,
	until  timestamptz NOT NULL
);
