-- After the sale: the payment's own state apart from what the order shows,
-- the PaymentIntent refunds and disputes find the order by, what was
-- charged and refunded, the refunds by id and the dispute.
ALTER TABLE orders ADD COLUMN payment_state text NOT NULL DEFAULT '';
UPDATE orders SET payment_state = status;
ALTER TABLE orders ADD COLUMN payment_intent_id text COLLATE "C" CHECK (payment_intent_id <> '');
ALTER TABLE orders ADD COLUMN amount_paid bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN refunds jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(refunds) = 'array');
ALTER TABLE orders ADD COLUMN dispute jsonb;
ALTER TABLE orders ADD COLUMN refunds_as_of bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN charge_refunded bigint NOT NULL DEFAULT 0;
CREATE INDEX orders_payment_intent ON orders (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
DROP INDEX orders_unfulfilled;
CREATE INDEX orders_unfulfilled ON orders (created_at, id) WHERE payment_state = 'paid' AND fulfilled_at IS NULL;
