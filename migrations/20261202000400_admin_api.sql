-- The admin REST API: sign-in sessions, API key scopes, broadcasts, and the indexes its listings walk.

-- a refresh token (stored as its SHA-256) of an admin's API session; using one retires it and issues the next
-- in the same family, and using a retired one again (a stolen copy) revokes the whole family
CREATE TABLE admin_sessions (
    id            BIGSERIAL PRIMARY KEY,
    admin_id      BIGINT NOT NULL REFERENCES admins (id),
    family        UUID NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    source_ip     TEXT
);
CREATE INDEX admin_sessions_family ON admin_sessions (family);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id) WHERE revoked_at IS NULL;

-- access tokens issued before this instant no longer count (sign out everywhere, password change, disable)
ALTER TABLE admins ADD COLUMN tokens_valid_after TIMESTAMPTZ NOT NULL DEFAULT '-infinity';

-- API keys carry exactly one scope
UPDATE api_keys SET scopes = '{read}' WHERE scopes = '{}';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope CHECK (scopes = '{read}' OR scopes = '{write}');

-- listings: keyset pagination over (created_at, id) or id, filtered by the columns operators filter on
CREATE INDEX payments_status_created ON payments (status, created_at, id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_method_created ON payments (method, created_at, id);
CREATE INDEX orders_created ON orders (created_at, id);
CREATE INDEX orders_status_created ON orders (status, created_at, id);
CREATE INDEX subscriptions_status_id ON subscriptions (status, id);
CREATE INDEX subscriptions_server ON subscriptions (server_id, id);
CREATE INDEX users_username_lower ON users (lower(username) text_pattern_ops);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX audit_log_actor ON audit_log (actor_kind, actor_id, at);

-- customers who blocked the bot (a broadcast or a notice got 403 "bot was blocked by the user")
ALTER TABLE users ADD COLUMN blocked_bot_at TIMESTAMPTZ;

-- a message to many customers, sent by a durable job within Telegram's limits
CREATE TABLE broadcasts (
    id              BIGSERIAL PRIMARY KEY,
    -- text per language ({"en": "...", "fa": "..."}); customers get their language's, else `fallback`'s
    texts           JSONB NOT NULL,
    fallback        TEXT NOT NULL CHECK (fallback IN ('en', 'fa', 'ru')),
    audience        JSONB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'paused', 'cancelled', 'done')),
    total           INTEGER NOT NULL CHECK (total >= 0),
    created_by_kind TEXT NOT NULL,
    created_by_id   TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);

-- one row per customer a broadcast goes to, made when it is created (the audience as it was then)
-- pending → sending (claimed, committed before the send) → sent | failed | blocked; a claim whose instance died
-- mid-send becomes `unknown` and is never sent again: a customer gets a broadcast at most once
CREATE TABLE broadcast_recipients (
    broadcast_id  BIGINT NOT NULL REFERENCES broadcasts (id),
    user_id       BIGINT NOT NULL REFERENCES users (id),
    chat_id       BIGINT NOT NULL,
    language      TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'blocked', 'unknown', 'skipped')),
    claimed_by    TEXT,
    claimed_until TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    done_at       TIMESTAMPTZ,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, user_id) WHERE status = 'pending';
CREATE INDEX broadcast_recipients_sending ON broadcast_recipients (claimed_until) WHERE status = 'sending';
