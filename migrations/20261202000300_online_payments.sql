-- Online payments (issue 10): Stripe Checkout and Zarinpal, settled through the same fulfilment as card payments.

-- where the customer pays (the Checkout Session's URL, Zarinpal's StartPay URL)
ALTER TABLE payments ADD COLUMN checkout_url TEXT;
ALTER TABLE payments ADD COLUMN zarinpal_card_hash TEXT;
-- why a gateway payment failed, or why its settlement was held for an admin (amount mismatch, …)
ALTER TABLE payments ADD COLUMN failure_reason TEXT;
ALTER TABLE payments ADD COLUMN flagged_at TIMESTAMPTZ;
CREATE INDEX payments_open_online ON payments (created_at) WHERE status = 'pending' AND method <> 'card';
