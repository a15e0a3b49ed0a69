-- Where an order came from: the shop itself, or a Payment Link (or Buy
-- Button) sale that the shop made an order of.
ALTER TABLE orders ADD COLUMN source text NOT NULL DEFAULT 'shop';
