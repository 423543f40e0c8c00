-- DeployClaw initial schema (SQLite dialect). Kept in step with migrations/postgres.
-- Ids are UUIDs (16-byte BLOBs here, UUID on PostgreSQL); times are UTC RFC 3339 text here, TIMESTAMPTZ there.

CREATE TABLE clients (
    id                 BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email              TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    plan               TEXT NOT NULL DEFAULT 'trial',
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    suspended_reason   TEXT,
    stripe_customer_id TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    client_id     BLOB NOT NULL REFERENCES clients (id),
    email         TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    display_name  TEXT,
    role          TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'platform_admin')),
    totp_secret   BLOB,            -- vault envelope, never plaintext
    totp_enabled  INTEGER NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step INTEGER,        -- replay guard: last accepted TOTP time step
    created_at    TEXT NOT NULL,
    last_login_at TEXT
) STRICT;
CREATE INDEX idx_users_client ON users (client_id);

CREATE TABLE agents (
    id           BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    client_id    BLOB NOT NULL REFERENCES clients (id),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
    status       TEXT NOT NULL DEFAULT 'provisioning'
                 CHECK (status IN ('provisioning', 'running', 'stopped', 'error', 'deleting')),
    template     TEXT NOT NULL,
    container_id TEXT,
    config       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    permissions  TEXT NOT NULL CHECK (json_valid(permissions)),
    host         TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (client_id, name),
    UNIQUE (id, client_id)
) STRICT;
CREATE INDEX idx_agents_client ON agents (client_id);

-- Credentials are bound to (client, agent): the composite reference makes a row pointing at another
-- tenant's agent impossible, and the vault binds the same triple into the AEAD associated data.
CREATE TABLE agent_credentials (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    client_id   BLOB NOT NULL,
    agent_id    BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_version INTEGER NOT NULL CHECK (key_version > 0),
    nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BLOB NOT NULL CHECK (length(ciphertext) >= 16),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (agent_id, name),
    FOREIGN KEY (agent_id, client_id) REFERENCES agents (id, client_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX idx_credentials_client ON agent_credentials (client_id);

-- Append-only: the triggers below refuse UPDATE and DELETE. client_id is NULL for platform-level events
-- (e.g. a sign-in attempt for an unknown address); agent_id has no foreign key so that the record of an
-- agent outlives the agent.
CREATE TABLE audit_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   BLOB REFERENCES clients (id),
    agent_id    BLOB,
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('user', 'agent', 'platform', 'admin')),
    actor_id    BLOB,
    action_type TEXT NOT NULL CHECK (length(action_type) BETWEEN 1 AND 64),
    target      TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    ip_address  TEXT,
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX idx_audit_client ON audit_logs (client_id, id);
CREATE INDEX idx_audit_agent ON audit_logs (agent_id, id);
CREATE INDEX idx_audit_type ON audit_logs (action_type, id);

CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only');
END;

CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only');
END;
