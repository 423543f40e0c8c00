-- DeployClaw initial schema (PostgreSQL dialect). Kept in step with migrations/sqlite.

CREATE TABLE clients (
    id                 UUID PRIMARY KEY,
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email              TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    plan               TEXT NOT NULL DEFAULT 'trial',
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    suspended_reason   TEXT,
    stripe_customer_id TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    client_id      UUID NOT NULL REFERENCES clients (id),
    email          TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    display_name   TEXT,
    role           TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'platform_admin')),
    totp_secret    BYTEA,          -- vault envelope, never plaintext
    totp_enabled   BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,         -- replay guard: last accepted TOTP time step
    created_at     TIMESTAMPTZ NOT NULL,
    last_login_at  TIMESTAMPTZ
);
CREATE INDEX idx_users_client ON users (client_id);

CREATE TABLE agents (
    id           UUID PRIMARY KEY,
    client_id    UUID NOT NULL REFERENCES clients (id),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63),
    status       TEXT NOT NULL DEFAULT 'provisioning'
                 CHECK (status IN ('provisioning', 'running', 'stopped', 'error', 'deleting')),
    template     TEXT NOT NULL,
    container_id TEXT,
    config       JSONB NOT NULL DEFAULT '{}'::jsonb,
    permissions  JSONB NOT NULL,
    host         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT agents_client_name_key UNIQUE (client_id, name),
    CONSTRAINT agents_id_client_key UNIQUE (id, client_id)
);
CREATE INDEX idx_agents_client ON agents (client_id);

-- Credentials are bound to (client, agent): the composite reference makes a row pointing at another
-- tenant's agent impossible, and the vault binds the same triple into the AEAD associated data.
CREATE TABLE agent_credentials (
    id          UUID PRIMARY KEY,
    client_id   UUID NOT NULL,
    agent_id    UUID NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_version INTEGER NOT NULL CHECK (key_version > 0),
    nonce       BYTEA NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BYTEA NOT NULL CHECK (length(ciphertext) >= 16),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT agent_credentials_agent_name_key UNIQUE (agent_id, name),
    FOREIGN KEY (agent_id, client_id) REFERENCES agents (id, client_id) ON DELETE CASCADE
);
CREATE INDEX idx_credentials_client ON agent_credentials (client_id);

-- Append-only: the trigger below refuses UPDATE, DELETE and TRUNCATE. client_id is NULL for platform-level
-- events; agent_id has no foreign key so that the record of an agent outlives the agent.
CREATE TABLE audit_logs (
    id          BIGSERIAL PRIMARY KEY,
    client_id   UUID REFERENCES clients (id),
    agent_id    UUID,
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('user', 'agent', 'platform', 'admin')),
    actor_id    UUID,
    action_type TEXT NOT NULL CHECK (length(action_type) BETWEEN 1 AND 64),
    target      TEXT,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    ip_address  TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_audit_client ON audit_logs (client_id, id);
CREATE INDEX idx_audit_agent ON audit_logs (agent_id, id);
CREATE INDEX idx_audit_type ON audit_logs (action_type, id);

CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_logs_no_update_delete BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();
