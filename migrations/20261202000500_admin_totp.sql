-- An optional second factor for admin sign-in: a TOTP secret (RFC 6238, base32), pending until a first code
-- confirms it (`totp_enabled_at`), and the last 30-second step a code was accepted for, so each code works once.
ALTER TABLE admins ADD COLUMN totp_secret TEXT CHECK (totp_secret IS NULL OR totp_secret ~ '^[A-Z2-7]{16,128}$');
ALTER TABLE admins ADD COLUMN totp_enabled_at TIMESTAMPTZ;
ALTER TABLE admins ADD COLUMN totp_last_step BIGINT;
ALTER TABLE admins ADD CONSTRAINT admins_totp_enabled_has_secret
    CHECK (totp_enabled_at IS NULL OR totp_secret IS NOT NULL);

-- one-use recovery codes for an admin who lost their authenticator, stored as SHA-256 (hex) only
CREATE TABLE admin_recovery_codes (
    id          BIGSERIAL PRIMARY KEY,
    admin_id    BIGINT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX admin_recovery_codes_admin ON admin_recovery_codes (admin_id);
