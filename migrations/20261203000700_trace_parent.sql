-- Traces across the queue: the W3C `traceparent` of the span that stored an update (the webhook request) or
-- enqueued a job, so the span that handles it later continues the same trace. NULL: no trace to continue.
-- Expand-only: nullable columns without a default change no existing row (no rewrite, a moment's lock), and
-- instances still running the previous release neither read nor write them.
SET LOCAL lock_timeout = '5s';
ALTER TABLE telegram_updates ADD COLUMN trace_parent TEXT;
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
