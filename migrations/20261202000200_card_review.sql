-- Card-to-card payments (issue 9): receipts, review, auto-accept, exactly-once fulfilment.

-- An order awaiting payment by card shows one card (rotated over the configured ones) until a deadline.
ALTER TABLE orders ADD COLUMN pay_by TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN pay_to JSONB CHECK (pay_to IS NULL OR jsonb_typeof(pay_to) = 'object');
-- what fulfilment granted (days added, bytes added), so a later reject of an auto-accepted payment can take it back
ALTER TABLE orders ADD COLUMN granted_days INT CHECK (granted_days IS NULL OR granted_days > 0);
ALTER TABLE orders ADD COLUMN granted_bytes BIGINT CHECK (granted_bytes IS NULL OR granted_bytes > 0);
CREATE INDEX orders_pay_by ON orders (pay_by) WHERE status = 'awaiting_payment';

ALTER TABLE payments ADD COLUMN receipt_kind TEXT CHECK (receipt_kind IS NULL OR receipt_kind IN ('photo', 'document'));
-- who decided, as people read it ("@alice (admin 3)", "auto-accept"), and through what
ALTER TABLE payments ADD COLUMN decided_by TEXT;
ALTER TABLE payments ADD COLUMN decided_via TEXT
    CHECK (decided_via IS NULL OR decided_via IN ('telegram', 'api', 'scheduler', 'cli', 'dashboard'));
-- a preset rejection reason (wrong_amount, unreadable, not_received, duplicate); `reason` holds typed text
ALTER TABLE payments ADD COLUMN reason_code TEXT
    CHECK (reason_code IS NULL OR reason_code IN ('wrong_amount', 'unreadable', 'not_received', 'duplicate', 'other'));
ALTER TABLE payments ADD COLUMN submitted_at TIMESTAMPTZ;

-- an auto-accepted payment may still be rejected by an admin (what it granted is taken back)
ALTER TABLE payments DROP CONSTRAINT payments_status_fits_method;
ALTER TABLE payments ADD CONSTRAINT payments_status_fits_method CHECK (
    (method = 'card' AND status IN ('pending', 'under_review', 'accepted', 'rejected', 'auto_accepted', 'refunded'))
    OR (method <> 'card' AND status IN ('pending', 'succeeded', 'failed', 'refunded')));

-- at most one payment of an order in flight, and at most one that took money
CREATE UNIQUE INDEX payments_one_open_per_order ON payments (order_id) WHERE status IN ('pending', 'under_review');
CREATE UNIQUE INDEX payments_one_settled_per_order ON payments (order_id)
    WHERE status IN ('accepted', 'auto_accepted', 'succeeded');
CREATE INDEX payments_decided ON payments (decided_at) WHERE decided_at IS NOT NULL;

-- receipts refused as reused: kept so admins see every attempt (the first payment that used it, who tried again)
CREATE TABLE receipt_reuses (
    id              BIGSERIAL PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    order_id        BIGINT REFERENCES orders (id),
    first_payment   BIGINT NOT NULL REFERENCES payments (id),
    matched_on      TEXT NOT NULL CHECK (matched_on IN ('file_unique_id', 'sha256')),
    file_unique_id  TEXT NOT NULL,
    at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX receipt_reuses_user ON receipt_reuses (user_id, at DESC);

-- every admin's copy of a review message, edited when the payment is decided
-- (the receipt photo posted to each admin chat, and the copies /pending and /payment showed)
CREATE TABLE review_messages (
    payment_id  BIGINT NOT NULL REFERENCES payments (id),
    chat_id     BIGINT NOT NULL,
    message_id  INT NOT NULL,
    -- the receipt with a caption (edited with editMessageCaption) or a text message
    has_photo   BOOLEAN NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at   TIMESTAMPTZ,
    PRIMARY KEY (payment_id, chat_id, message_id)
);
