-- A customer's currency is fixed when we first meet them (from the shop's language → currency map), and an
-- order's when its draft starts: switching the bot's language never changes what anyone pays. Customers met
-- before this get theirs at their next update, from the language they use then.
ALTER TABLE users ADD COLUMN currency TEXT CHECK (currency IS NULL OR currency IN ('USD', 'EUR', 'IRR'));

-- an order's currency is set from its start (a draft has no amount yet); its amount when it is submitted
ALTER TABLE orders DROP CONSTRAINT orders_amount_has_currency;
ALTER TABLE orders ADD CONSTRAINT orders_amount_has_currency CHECK (amount_minor IS NULL OR currency IS NOT NULL);
