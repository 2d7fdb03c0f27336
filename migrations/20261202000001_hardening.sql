-- Hardening before payments (issue 8).

-- Metering: the core run the stored raw counters belong to (the core's uptime when they were read, and when
-- that was), so a counter read after a restart is never mistaken for one that kept growing; and when the node
-- was last metered.
ALTER TABLE servers
    ADD COLUMN core_read_at TIMESTAMPTZ,
    ADD COLUMN core_uptime_secs BIGINT,
    ADD COLUMN metered_at TIMESTAMPTZ;

-- A subscription may be revoked before it was ever placed or started (a refund of a pending purchase).
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_placed_when_started;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_placed_when_started CHECK (
    status IN ('pending', 'revoked') OR (starts_at IS NOT NULL AND expires_at IS NOT NULL AND server_id IS NOT NULL));

-- Once-only job keys outlive the jobs that used them (finished jobs are deleted after jobs.keep_done_days):
-- a key suppresses a repeat for jobs.keep_keys_days.
CREATE TABLE job_keys (
    key         TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO job_keys (key, created_at)
    SELECT idempotency_key, created_at FROM jobs WHERE idempotency_key IS NOT NULL
    ON CONFLICT DO NOTHING;
CREATE INDEX job_keys_created ON job_keys (created_at);

-- the clean-up sweep deletes finished jobs by age
CREATE INDEX jobs_done_finished ON jobs (finished_at) WHERE status = 'done';
