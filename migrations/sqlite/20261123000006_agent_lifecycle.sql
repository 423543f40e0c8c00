-- The full agent lifecycle (SQLite dialect): `starting` (container started, waiting for its health check) and
-- `stopping` (stop requested, container being stopped) join the states, and the reconciler's crash record
-- survives a platform restart: how often it restarted the agent, the times of its recent crashes, and which
-- container exit it last counted (the runtime's FinishedAt), so one exit is never counted twice.
--
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt (sqlite.org/lang_altertable.html,
-- "other kinds of table schema changes"). The migration runs in one transaction, where foreign keys cannot be
-- switched off, so dropping `agents` cascades into `agent_credentials`: its rows are set aside first and put
-- back once the rebuilt table carries the agents again. All or nothing: a failure rolls the whole rebuild back.
CREATE TABLE agent_credentials_kept AS SELECT * FROM agent_credentials;
CREATE TABLE agents_rebuilt (
    id                 BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    client_id          BLOB NOT NULL REFERENCES clients (id),
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
    status             TEXT NOT NULL DEFAULT 'provisioning'
                       CHECK (status IN ('provisioning', 'starting', 'running', 'stopping', 'stopped', 'error',
                                         'deleting')),
    template           TEXT NOT NULL,
    container_id       TEXT,
    config             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    permissions        TEXT NOT NULL CHECK (json_valid(permissions)),
    host               TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    network_block      INTEGER CHECK (network_block BETWEEN 0 AND 65535),
    gateway_token_hash BLOB CHECK (length(gateway_token_hash) = 32),
    status_reason      TEXT CHECK (length(status_reason) <= 1000),
    restart_count      INTEGER NOT NULL DEFAULT 0 CHECK (restart_count >= 0),
    recent_crashes     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(recent_crashes)),
    last_exit_counted  TEXT CHECK (length(last_exit_counted) <= 64),
    UNIQUE (client_id, name),
    UNIQUE (id, client_id)
) STRICT;
INSERT INTO agents_rebuilt (id, client_id, name, status, template, container_id, config, permissions, host,
                            created_at, updated_at, network_block, gateway_token_hash, status_reason)
    SELECT id, client_id, name, status, template, container_id, config, permissions, host,
           created_at, updated_at, network_block, gateway_token_hash, status_reason
    FROM agents;
DROP TABLE agents;
ALTER TABLE agents_rebuilt RENAME TO agents;
CREATE INDEX idx_agents_client ON agents (client_id);
CREATE UNIQUE INDEX idx_agents_network_block ON agents (network_block);
INSERT INTO agent_credentials SELECT * FROM agent_credentials_kept;
DROP TABLE agent_credentials_kept;
