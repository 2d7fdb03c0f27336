SET LOCAL lock_timeout = '5s';

-- The TLS certificates of a node's inbounds, as the node sync reads them (at most once an hour): the earliest
-- notAfter over its TLS inbounds (NULL when it has none or they were never read), when they were last read, and
-- the notAfter an admin alert was sent for (each certificate is alerted once; a renewed one can be alerted again
-- when its own end comes near). Nullable columns only (expand): the previous release never reads them.
ALTER TABLE servers ADD COLUMN tls_not_after timestamptz;
ALTER TABLE servers ADD COLUMN tls_checked_at timestamptz;
ALTER TABLE servers ADD COLUMN tls_alerted_for timestamptz;
