-- A claimed broadcast recipient is `sending` from its claim; `send_started_at` is set just before its message goes
-- to Telegram (and cleared when Telegram answered that it was not delivered). A claim whose sender died is then
-- `unknown` only when a send had started; one that never got that far goes back to `pending` and is sent later.
ALTER TABLE broadcast_recipients ADD COLUMN send_started_at TIMESTAMPTZ;
