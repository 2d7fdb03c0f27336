-- How many messages an update's handler has sent so far: a retry (after an error, a panic or the time limit)
-- skips them, so an update cut short repeats nothing it already said.
ALTER TABLE telegram_updates ADD COLUMN sent INT NOT NULL DEFAULT 0 CHECK (sent >= 0);
