-- After the sale: the payment's own state apart from what the order shows,
-- the PaymentIntent refunds and disputes find the order by, what was
-- charged and refunded, the refunds by id and the dispute.
ALTER TABLE orders ADD COLUMN payment_state TEXT NOT NULL DEFAULT '';
UPDATE orders SET payment_state = status;
ALTER TABLE orders ADD COLUMN payment_intent_id TEXT CHECK (payment_intent_id <> '');
ALTER TABLE orders ADD COLUMN amount_paid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN amount_refunded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN refunds TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(refunds));
ALTER TABLE orders ADD COLUMN dispute TEXT CHECK (dispute IS NULL OR json_valid(dispute));
ALTER TABLE orders ADD COLUMN refunds_as_of INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN charge_refunded INTEGER NOT NULL DEFAULT 0;
CREATE INDEX orders_payment_intent ON orders (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
DROP INDEX orders_unfulfilled;
CREATE INDEX orders_unfulfilled ON orders (created_at, id) WHERE payment_state = 'paid' AND fulfilled_at IS NULL;
