-- The back office: the list's order (newest first, then the greater id) as
-- one index, with and without a status; the overview's sums by payment
-- time; an order's events in the order they came.
DROP INDEX orders_created_at;
CREATE INDEX orders_created ON orders (created_at, id);
DROP INDEX orders_status_created_at;
CREATE INDEX orders_status_created ON orders (status, created_at, id);
CREATE INDEX orders_paid_at ON orders (paid_at) WHERE paid_at IS NOT NULL;
DROP INDEX events_order_id;
CREATE INDEX events_order_received ON events (order_id, received_at);

-- Email search: a trigram index finds the orders whose email contains a
-- few letters without reading every order. It indexes order_emails, whose
-- integer key VACUUM (and VACUUM INTO, the backup) keeps, rather than the
-- orders' own rowids, which VACUUM may renumber. The triggers keep
-- order_emails in step with orders.email; a migration that rebuilds the
-- orders table must create them again.
CREATE TABLE order_emails (
	n        INTEGER PRIMARY KEY,
	order_id TEXT NOT NULL UNIQUE,
	email    TEXT NOT NULL
) STRICT;
CREATE VIRTUAL TABLE order_emails_fts USING fts5(email, content = 'order_emails', content_rowid = 'n', tokenize = 'trigram');
CREATE TRIGGER order_emails_ai AFTER INSERT ON order_emails BEGIN
	INSERT INTO order_emails_fts (rowid, email) VALUES (new.n, new.email);
END;
CREATE TRIGGER order_emails_au AFTER UPDATE ON order_emails BEGIN
	INSERT INTO order_emails_fts (order_emails_fts, rowid, email) VALUES ('delete', old.n, old.email);
	INSERT INTO order_emails_fts (rowid, email) VALUES (new.n, new.email);
END;
CREATE TRIGGER orders_email_ai AFTER INSERT ON orders WHEN new.email <> '' BEGIN
	INSERT INTO order_emails (order_id, email) VALUES (new.id, new.email);
END;
CREATE TRIGGER orders_email_au AFTER UPDATE OF email ON orders WHEN new.email IS NOT old.email BEGIN
	INSERT INTO order_emails (order_id, email) VALUES (new.id, new.email)
		ON CONFLICT (order_id) DO UPDATE SET email = excluded.email;
END;
INSERT INTO order_emails (order_id, email) SELECT id, email FROM orders WHERE email <> '';

-- The alarms page lists dead notifications.
CREATE INDEX notifications_dead ON notifications (created_at, id) WHERE status = 'dead';
