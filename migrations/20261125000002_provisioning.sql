-- Provisioning: what the provisioner remembers per node, per client, and job coalescing.

ALTER TABLE servers
    -- the operator's base config template for this node; NULL = the built-in default
    ADD COLUMN base_config JSONB CHECK (base_config IS NULL OR jsonb_typeof(base_config) = 'object'),
    -- how to restart the core on the node; NULL = `sudo -n systemctl restart <core>`
    ADD COLUMN restart_command TEXT CHECK (restart_command IS NULL OR length(restart_command) BETWEEN 1 AND 500),
    -- hash of the base (config without clients) last written to the node: a change needs a restart
    ADD COLUMN applied_base_hash TEXT,
    -- hash of the whole config file last written (skip rewriting an identical file)
    ADD COLUMN applied_config_hash TEXT,
    ADD COLUMN config_written_at TIMESTAMPTZ,
    -- when the full desired user set was last confirmed on the running core
    ADD COLUMN users_synced_at TIMESTAMPTZ;

ALTER TABLE clients
    -- when the client was removed from the node (its counter must not grow after this)
    ADD COLUMN removed_from_node_at TIMESTAMPTZ;
CREATE INDEX clients_pending_on_node ON clients (server_id) WHERE desired <> node_state;

-- A coalescing key: at most one queued job per key (e.g. one pending sync per node); enqueuing again while
-- one is queued is a no-op, while one that is already running does not block the next.
ALTER TABLE jobs ADD COLUMN coalesce_key TEXT;
CREATE UNIQUE INDEX jobs_coalesce_queued ON jobs (coalesce_key) WHERE status = 'queued';
