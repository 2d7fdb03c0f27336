-- Updates are stored as received and only ever read whole by the app: plain json (validated, not converted
-- to jsonb's binary form) is cheaper on the intake's hot path.
ALTER TABLE telegram_updates DROP CONSTRAINT telegram_updates_payload_check;
ALTER TABLE telegram_updates ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE telegram_updates ADD CONSTRAINT telegram_updates_payload_check CHECK (json_typeof(payload) = 'object');
