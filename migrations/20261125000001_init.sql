-- vpnshop baseline schema: the whole data model of ARCHITECTURE.md.
-- Status columns are TEXT with CHECK constraints (the Rust enums in src/domain mirror them);
-- money is integer minor units (cents, rials) with its currency; every amount is positive.

CREATE TABLE locations (
    code        TEXT PRIMARY KEY CHECK (code ~ '^[a-z]{2}[a-z0-9-]{0,14}$'),
    flag        TEXT NOT NULL,
    labels      JSONB NOT NULL CHECK (jsonb_typeof(labels) = 'object' AND labels ? 'en'),
    sort_order  INT NOT NULL DEFAULT 0,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    telegram_id    BIGINT NOT NULL UNIQUE CHECK (telegram_id > 0),
    username       TEXT,
    first_name     TEXT,
    language       TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fa', 'ru')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    banned_at      TIMESTAMPTZ,
    ban_reason     TEXT,
    trial_used_at  TIMESTAMPTZ
);

CREATE TABLE servers (
    id                    BIGSERIAL PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    location_code         TEXT NOT NULL REFERENCES locations (code),
    public_host           TEXT NOT NULL CHECK (length(public_host) BETWEEN 1 AND 253),
    public_port           INT NOT NULL CHECK (public_port BETWEEN 1 AND 65535),
    ssh_host              TEXT NOT NULL CHECK (length(ssh_host) BETWEEN 1 AND 253),
    ssh_port              INT NOT NULL DEFAULT 22 CHECK (ssh_port BETWEEN 1 AND 65535),
    ssh_user              TEXT NOT NULL CHECK (length(ssh_user) BETWEEN 1 AND 64),
    host_key_fingerprint  TEXT CHECK (host_key_fingerprint IS NULL OR host_key_fingerprint LIKE 'SHA256:%'),
    core                  TEXT NOT NULL DEFAULT 'v2ray' CHECK (core IN ('v2ray', 'xray')),
    protocol              TEXT NOT NULL DEFAULT 'vmess' CHECK (protocol IN ('vmess', 'vless')),
    inbound_tag           TEXT NOT NULL CHECK (length(inbound_tag) BETWEEN 1 AND 64),
    api_port              INT NOT NULL DEFAULT 10085 CHECK (api_port BETWEEN 1 AND 65535),
    config_path           TEXT NOT NULL DEFAULT '/etc/v2ray/config.json',
    capacity              INT NOT NULL CHECK (capacity > 0),
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    health                TEXT NOT NULL DEFAULT 'unknown'
                          CHECK (health IN ('unknown', 'ok', 'down', 'host_key_mismatch')),
    health_detail         TEXT,
    last_seen_at          TIMESTAMPTZ,
    last_restart_at       TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX servers_location ON servers (location_code) WHERE enabled;

CREATE TABLE plans (
    id              BIGSERIAL PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,
    location_code   TEXT NOT NULL REFERENCES locations (code),
    duration_days   INT NOT NULL CHECK (duration_days BETWEEN 1 AND 3660),
    seats           INT NOT NULL CHECK (seats BETWEEN 1 AND 100),
    data_cap_bytes  BIGINT CHECK (data_cap_bytes IS NULL OR data_cap_bytes > 0),
    is_trial        BOOLEAN NOT NULL DEFAULT FALSE,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    sort_order      INT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (location_code, duration_days, seats, data_cap_bytes, is_trial)
);

CREATE TABLE plan_prices (
    plan_id       BIGINT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    currency      TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'IRR')),
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, currency)
);

CREATE TABLE admins (
    id             BIGSERIAL PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    telegram_id    BIGINT UNIQUE CHECK (telegram_id IS NULL OR telegram_id > 0),
    password_hash  TEXT,
    role           TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at    TIMESTAMPTZ
);

CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    admin_id      BIGINT REFERENCES admins (id),
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix        TEXT NOT NULL UNIQUE,
    key_hash      TEXT NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    scopes        TEXT[] NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE TABLE orders (
    id              BIGSERIAL PRIMARY KEY,
    public_id       UUID NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL DEFAULT 'new' CHECK (kind IN ('new', 'renewal', 'topup')),
    -- the purchase being put together in the bot (location, duration, seats, data, step)
    selection       JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(selection) = 'object'),
    plan_id         BIGINT REFERENCES plans (id),
    -- price snapshot: fixed when the order leaves draft, never follows later price changes
    amount_minor    BIGINT CHECK (amount_minor IS NULL OR amount_minor > 0),
    currency        TEXT CHECK (currency IS NULL OR currency IN ('USD', 'EUR', 'IRR')),
    status          TEXT NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'awaiting_payment', 'paid', 'fulfilled',
                                      'cancelled', 'expired', 'refunded')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at         TIMESTAMPTZ,
    fulfilled_at    TIMESTAMPTZ,
    CONSTRAINT orders_priced_past_draft CHECK (status IN ('draft', 'cancelled', 'expired')
           OR (plan_id IS NOT NULL AND amount_minor IS NOT NULL AND currency IS NOT NULL)),
    CONSTRAINT orders_amount_has_currency CHECK ((amount_minor IS NULL) = (currency IS NULL))
);
CREATE UNIQUE INDEX orders_one_draft_per_user ON orders (user_id) WHERE status = 'draft';
CREATE INDEX orders_user ON orders (user_id, created_at DESC);
CREATE INDEX orders_status ON orders (status, updated_at);

CREATE TABLE payments (
    id                        BIGSERIAL PRIMARY KEY,
    public_id                 UUID NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    order_id                  BIGINT NOT NULL REFERENCES orders (id),
    method                    TEXT NOT NULL CHECK (method IN ('card', 'stripe', 'zarinpal')),
    status                    TEXT NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'under_review', 'accepted', 'rejected',
                                                'auto_accepted', 'succeeded', 'failed', 'refunded')),
    amount_minor              BIGINT NOT NULL CHECK (amount_minor > 0),
    currency                  TEXT NOT NULL CHECK (currency IN ('USD', 'EUR', 'IRR')),
    -- Stripe
    stripe_session_id         TEXT UNIQUE,
    stripe_payment_intent_id  TEXT UNIQUE,
    stripe_event_id           TEXT,
    -- Zarinpal
    zarinpal_authority        TEXT UNIQUE,
    zarinpal_ref_id           TEXT,
    zarinpal_card_pan         TEXT,
    -- card-to-card receipt
    receipt_file_id           TEXT,
    receipt_file_unique_id    TEXT UNIQUE,
    receipt_sha256            TEXT UNIQUE CHECK (receipt_sha256 IS NULL OR receipt_sha256 ~ '^[0-9a-f]{64}$'),
    review_deadline           TIMESTAMPTZ,
    reviewer_admin_id         BIGINT REFERENCES admins (id),
    decided_at                TIMESTAMPTZ,
    reason                    TEXT,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- card payments are reviewed; gateway payments succeed or fail
    CONSTRAINT payments_status_fits_method CHECK ((method = 'card' AND status IN ('pending', 'under_review', 'accepted', 'rejected',
                                           'auto_accepted', 'refunded'))
        OR (method <> 'card' AND status IN ('pending', 'succeeded', 'failed', 'refunded')))
);
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_review_due ON payments (review_deadline) WHERE status = 'under_review';

CREATE TABLE subscriptions (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users (id),
    order_id         BIGINT UNIQUE REFERENCES orders (id),
    plan_id          BIGINT NOT NULL REFERENCES plans (id),
    location_code    TEXT NOT NULL REFERENCES locations (code),
    server_id        BIGINT REFERENCES servers (id),
    is_trial         BOOLEAN NOT NULL DEFAULT FALSE,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'active', 'limited', 'expired', 'revoked')),
    seats            INT NOT NULL CHECK (seats BETWEEN 1 AND 100),
    duration_days    INT NOT NULL CHECK (duration_days BETWEEN 1 AND 3660),
    data_cap_bytes   BIGINT CHECK (data_cap_bytes IS NULL OR data_cap_bytes > 0),
    token            TEXT NOT NULL UNIQUE CHECK (length(token) >= 22),
    starts_at        TIMESTAMPTZ,
    expires_at       TIMESTAMPTZ,
    reminded_3d_at   TIMESTAMPTZ,
    reminded_1d_at   TIMESTAMPTZ,
    reminded_80_at   TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ,
    end_reason       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_paid_or_trial CHECK (is_trial OR order_id IS NOT NULL),
    CONSTRAINT subscriptions_placed_when_started CHECK (status = 'pending' OR (starts_at IS NOT NULL AND expires_at IS NOT NULL AND server_id IS NOT NULL)),
    CONSTRAINT subscriptions_expiry_after_start CHECK (expires_at IS NULL OR expires_at > starts_at)
);
CREATE UNIQUE INDEX subscriptions_one_trial_per_user ON subscriptions (user_id) WHERE is_trial;
CREATE INDEX subscriptions_user ON subscriptions (user_id);
CREATE INDEX subscriptions_expiry ON subscriptions (expires_at) WHERE status = 'active';

-- a renewal or data top-up order names the subscription it extends
ALTER TABLE orders ADD COLUMN subscription_id BIGINT REFERENCES subscriptions (id);
ALTER TABLE orders ADD CONSTRAINT orders_extension_names_subscription
    CHECK (kind = 'new' OR subscription_id IS NOT NULL);

CREATE TABLE clients (
    id               BIGSERIAL PRIMARY KEY,
    subscription_id  BIGINT NOT NULL REFERENCES subscriptions (id),
    seat             INT NOT NULL CHECK (seat BETWEEN 1 AND 100),
    server_id        BIGINT NOT NULL REFERENCES servers (id),
    uuid             UUID NOT NULL UNIQUE,
    email            TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 128),
    -- what the database wants on the node, and what the node was last seen to have
    desired          TEXT NOT NULL DEFAULT 'present' CHECK (desired IN ('present', 'absent')),
    node_state       TEXT NOT NULL DEFAULT 'absent' CHECK (node_state IN ('absent', 'present')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed_at       TIMESTAMPTZ
);
-- one live client per seat; a reset retires the old row and adds a new one
CREATE UNIQUE INDEX clients_live_seat ON clients (subscription_id, seat) WHERE desired = 'present';
CREATE INDEX clients_server ON clients (server_id, desired);

CREATE TABLE traffic (
    client_id      BIGINT PRIMARY KEY REFERENCES clients (id),
    last_raw_up    BIGINT NOT NULL DEFAULT 0 CHECK (last_raw_up >= 0),
    last_raw_down  BIGINT NOT NULL DEFAULT 0 CHECK (last_raw_down >= 0),
    up_bytes       BIGINT NOT NULL DEFAULT 0 CHECK (up_bytes >= 0),
    down_bytes     BIGINT NOT NULL DEFAULT 0 CHECK (down_bytes >= 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
    payload          JSONB NOT NULL DEFAULT '{}',
    idempotency_key  TEXT UNIQUE,
    status           TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'dead')),
    run_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts         INT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     INT NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    last_error       TEXT,
    locked_by        TEXT,
    locked_until     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_dead ON jobs (updated_at) WHERE status = 'dead';

CREATE TABLE telegram_updates (
    update_id    BIGINT PRIMARY KEY,
    chat_id      BIGINT,
    payload      JSONB NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    handled_at   TIMESTAMPTZ,
    attempts     INT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX telegram_updates_pending ON telegram_updates (chat_id, update_id) WHERE handled_at IS NULL;

CREATE TABLE webhook_events (
    provider      TEXT NOT NULL CHECK (provider IN ('stripe', 'zarinpal')),
    event_id      TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    kind          TEXT,
    payload       JSONB NOT NULL DEFAULT '{}',
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at  TIMESTAMPTZ,
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('admin', 'api_key', 'system', 'user', 'cli')),
    actor_id    TEXT,
    action      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT,
    detail      JSONB NOT NULL DEFAULT '{}',
    source_ip   TEXT
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, at DESC);
