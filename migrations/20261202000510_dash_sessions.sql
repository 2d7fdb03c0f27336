-- Dashboard sign-ins: a server-side session per browser, found by the SHA-256 of its cookie, with the CSRF token
-- its forms carry. A session that still owes its second factor is at stage 'second_factor' and opens nothing else.
CREATE TABLE dash_sessions (
    id            BIGSERIAL PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    admin_id      BIGINT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    stage         TEXT NOT NULL CHECK (stage IN ('second_factor', 'active')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    source_ip     TEXT,
    user_agent    TEXT,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX dash_sessions_admin ON dash_sessions (admin_id) WHERE revoked_at IS NULL;
