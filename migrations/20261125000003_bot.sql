-- The bot: a leased, per-chat ordered inbox of Telegram updates, and user preferences.

ALTER TABLE telegram_updates
    ADD COLUMN locked_by TEXT,
    ADD COLUMN locked_until TIMESTAMPTZ;
-- the chat an update belongs to decides its order; updates without a chat stand alone
UPDATE telegram_updates SET chat_id = -update_id WHERE chat_id IS NULL;
ALTER TABLE telegram_updates ALTER COLUMN chat_id SET NOT NULL;

ALTER TABLE users
    -- the customer picked their language in the menu (Telegram's language_code no longer applies)
    ADD COLUMN language_chosen BOOLEAN NOT NULL DEFAULT FALSE,
    -- banned users are told once
    ADD COLUMN ban_notified_at TIMESTAMPTZ;
