-- Admins hear of online payments in digests: a payment is announced once.
ALTER TABLE payments ADD COLUMN announced_at TIMESTAMPTZ;
CREATE INDEX payments_unannounced ON payments (decided_at) WHERE status = 'succeeded' AND announced_at IS NULL;
