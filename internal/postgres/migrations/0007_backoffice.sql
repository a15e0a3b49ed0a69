-- The back office: the overview's sums by payment time; an order's events
-- in the order they came. (The list's order already has its indexes.)
CREATE INDEX orders_paid_at ON orders (paid_at) WHERE paid_at IS NOT NULL;
DROP INDEX events_order_id;
CREATE INDEX events_order_received ON events (order_id, received_at);

-- Email search: a trigram index (pg_trgm, shipped with PostgreSQL) lets
-- ILIKE '%...%' find the orders whose email contains a few letters without
-- reading every order. A server without the extension, or a user who may
-- not create it, still searches correctly, only by reading every order:
-- the migration says so in a notice rather than failing. The extension
-- goes in the public schema, where every schema of the database finds it.
DO $$
DECLARE
	ext_schema text;
BEGIN
	BEGIN
		CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
	EXCEPTION WHEN OTHERS THEN
		RAISE NOTICE 'pg_trgm is not available (%): email search reads every order', SQLERRM;
	END;
	SELECT n.nspname INTO ext_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
	IF ext_schema IS NOT NULL THEN
		EXECUTE format('CREATE INDEX orders_email_trgm ON orders USING gin (email %I.gin_trgm_ops)', ext_schema);
	END IF;
END
$$;

-- The alarms page lists dead notifications.
CREATE INDEX notifications_dead ON notifications (created_at, id) WHERE status = 'dead';
