-- The inbox is claimed in update order over the pending updates only.
CREATE INDEX telegram_updates_pending_order ON telegram_updates (update_id) WHERE handled_at IS NULL;
DROP INDEX telegram_updates_pending;
