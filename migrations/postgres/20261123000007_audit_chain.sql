-- Tamper evidence for the audit trail (docs/audit.md): a hash chain per client (and one for platform events,
-- client_id NULL), the chain heads that serialise appends, signed checkpoints, and retention as the one
-- privileged way to delete. Kept in step with migrations/sqlite.

-- Rows written before this migration keep seq/prev_hash/hash NULL: they are outside the chain (verify counts
-- them as "before the chain"). NOT VALID: the constraint holds for every new row, old rows are exempt.
ALTER TABLE audit_logs
    ADD COLUMN seq       BIGINT CHECK (seq > 0),
    ADD COLUMN prev_hash BYTEA CHECK (length(prev_hash) = 32),
    ADD COLUMN hash      BYTEA CHECK (length(hash) = 32);
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_chained
    CHECK (seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL) NOT VALID;

-- One position per chain. The chain key is the client id, or the nil UUID for the platform chain.
CREATE UNIQUE INDEX idx_audit_chain
    ON audit_logs ((COALESCE(client_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq);

-- The head of each chain: the last sequence number handed out and the hash of that event. An append's
-- first statement is an upsert of this row, which locks it until the append commits.
CREATE TABLE audit_chain_heads (
    chain_id UUID PRIMARY KEY,
    seq      BIGINT NOT NULL CHECK (seq > 0),
    head     BYTEA NOT NULL CHECK (length(head) = 32)
);

CREATE FUNCTION audit_chain_heads_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.chain_id = OLD.chain_id AND NEW.seq >= OLD.seq THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit chain heads only move forward' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_chain_heads_forward_only BEFORE UPDATE OR DELETE ON audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION audit_chain_heads_forward_only();

-- Signed checkpoints of chain heads (Ed25519, key derived from the vault master key). kind 'retention' marks
-- the last event that retention deleted, so the chain can be verified from the events that remain.
CREATE TABLE audit_checkpoints (
    id          BIGSERIAL PRIMARY KEY,
    chain_id    UUID NOT NULL,
    seq         BIGINT NOT NULL CHECK (seq > 0),
    head_hash   BYTEA NOT NULL CHECK (length(head_hash) = 32),
    kind        TEXT NOT NULL CHECK (kind IN ('periodic', 'retention')),
    key_version BIGINT NOT NULL CHECK (key_version > 0),
    public_key  BYTEA NOT NULL CHECK (length(public_key) = 32),
    signature   BYTEA NOT NULL CHECK (length(signature) = 64),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_audit_checkpoints_chain ON audit_checkpoints (chain_id, seq, id);
CREATE INDEX idx_audit_checkpoints_kind ON audit_checkpoints (kind, chain_id, seq);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();

-- Retention is the one way to delete audit rows: as the NOLOGIN role deployclaw_audit_retention, which the
-- application role switches to explicitly (SET LOCAL ROLE) inside the retention transaction, and only for
-- chained rows that a signed retention checkpoint already covers. Creating a role needs CREATEROLE; an
-- application role without it needs an operator to create the role once (the hint says how).
DO $$
DECLARE
    setup TEXT := format(
        'as a database superuser run: CREATE ROLE deployclaw_audit_retention NOLOGIN; '
        'GRANT deployclaw_audit_retention TO %I; then migrate again (docs/audit.md)', current_user);
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'deployclaw_audit_retention') THEN
        BEGIN
            CREATE ROLE deployclaw_audit_retention NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL; -- another database migrated at the same time
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'the audit retention role deployclaw_audit_retention does not exist and % may not create it',
                    current_user USING HINT = setup;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'deployclaw_audit_retention', 'MEMBER') THEN
        BEGIN
            IF current_setting('server_version_num')::int >= 160000 THEN
                -- Switch to it explicitly, never inherit its DELETE privilege.
                EXECUTE format('GRANT deployclaw_audit_retention TO %I WITH INHERIT FALSE, SET TRUE', current_user);
            ELSE
                EXECUTE format('GRANT deployclaw_audit_retention TO %I', current_user);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION '% may not switch to the audit retention role deployclaw_audit_retention', current_user
                USING HINT = setup;
        END;
    END IF;
END;
$$;

-- The application role (the one migrating, which owns the tables) gives up UPDATE, DELETE and TRUNCATE on the
-- audit record. It could grant them back to itself as owner: that is a deliberate DDL act, not something a
-- query can do by accident, and the hash chain and checkpoints still show what changed (docs/audit.md).
REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs, audit_checkpoints FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs, audit_checkpoints FROM CURRENT_USER;
REVOKE DELETE, TRUNCATE ON audit_chain_heads FROM PUBLIC;
REVOKE DELETE, TRUNCATE ON audit_chain_heads FROM CURRENT_USER;
GRANT SELECT, DELETE ON audit_logs TO deployclaw_audit_retention;
GRANT SELECT ON audit_checkpoints TO deployclaw_audit_retention;

CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_user = 'deployclaw_audit_retention' THEN
            IF OLD.seq IS NULL OR EXISTS (
                SELECT 1 FROM audit_checkpoints c
                WHERE c.kind = 'retention'
                  AND c.chain_id = COALESCE(OLD.client_id, '00000000-0000-0000-0000-000000000000'::uuid)
                  AND c.seq >= OLD.seq) THEN
                RETURN OLD;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Per-client retention override in days (NULL: the platform default), clamped to the platform maximum.
ALTER TABLE clients ADD COLUMN audit_retention_days INTEGER CHECK (audit_retention_days BETWEEN 1 AND 3650);
