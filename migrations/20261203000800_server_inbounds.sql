SET LOCAL lock_timeout = '5s';

-- A node's client inbounds (domain::inbound::InboundSpec as JSON: protocol, transport, security, port, TLS,
-- WebSocket, gRPC, CDN and REALITY settings). '[]' is the one plain TCP inbound the node had before: protocol,
-- inbound_tag and public_port describe it, and this release keeps writing them from the first inbound, so the
-- previous release goes on serving (expand; those columns are contracted in a later release).
ALTER TABLE servers ADD COLUMN inbounds jsonb NOT NULL DEFAULT '[]';
ALTER TABLE servers ADD CONSTRAINT servers_inbounds_is_list CHECK (jsonb_typeof(inbounds) = 'array') NOT VALID;
