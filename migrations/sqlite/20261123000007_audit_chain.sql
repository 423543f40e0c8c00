-- Tamper evidence for the audit trail (docs/audit.md): a hash chain per client (and one for platform events,
-- client_id NULL), the chain heads that serialise appends, signed checkpoints, retention through a gate.
-- Kept in step with migrations/postgres.

-- Rows written before this migration keep seq/prev_hash/hash NULL: they are outside the chain (verify counts
-- them as "before the chain") and every new row must be chained (trigger below). SQLite has no SHA-256, so
-- old rows cannot be chained here; and the append-only trigger forbids filling them in later.
ALTER TABLE audit_logs ADD COLUMN seq INTEGER CHECK (seq > 0);
ALTER TABLE audit_logs ADD COLUMN prev_hash BLOB CHECK (length(prev_hash) = 32);
ALTER TABLE audit_logs ADD COLUMN hash BLOB CHECK (length(hash) = 32);

CREATE TRIGGER audit_logs_must_be_chained BEFORE INSERT ON audit_logs
WHEN NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL
BEGIN
    SELECT RAISE(ABORT, 'audit_logs rows must carry seq, prev_hash and hash');
END;

-- One position per chain. The chain key is the client id, or 16 zero bytes for the platform chain.
CREATE UNIQUE INDEX idx_audit_chain ON audit_logs (coalesce(client_id, X'00000000000000000000000000000000'), seq);

-- The head of each chain: the last sequence number handed out and the hash of that event. An append's
-- first statement is an upsert of this row, so SQLite takes its write lock before anything is read.
CREATE TABLE audit_chain_heads (
    chain_id BLOB PRIMARY KEY NOT NULL CHECK (length(chain_id) = 16),
    seq      INTEGER NOT NULL CHECK (seq > 0),
    head     BLOB NOT NULL CHECK (length(head) = 32)
) STRICT;

CREATE TRIGGER audit_chain_heads_forward_only BEFORE UPDATE ON audit_chain_heads
WHEN NEW.chain_id IS NOT OLD.chain_id OR NEW.seq < OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'audit chain heads only move forward');
END;

CREATE TRIGGER audit_chain_heads_no_delete BEFORE DELETE ON audit_chain_heads
BEGIN
    SELECT RAISE(ABORT, 'audit chain heads are never deleted');
END;

-- Signed checkpoints of chain heads (Ed25519, key derived from the vault master key). kind 'retention' marks
-- the last event that retention deleted, so the chain can be verified from the events that remain.
CREATE TABLE audit_checkpoints (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id    BLOB NOT NULL CHECK (length(chain_id) = 16),
    seq         INTEGER NOT NULL CHECK (seq > 0),
    head_hash   BLOB NOT NULL CHECK (length(head_hash) = 32),
    kind        TEXT NOT NULL CHECK (kind IN ('periodic', 'retention')),
    key_version INTEGER NOT NULL CHECK (key_version > 0),
    public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
    signature   BLOB NOT NULL CHECK (length(signature) = 64),
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX idx_audit_checkpoints_chain ON audit_checkpoints (chain_id, seq, id);
CREATE INDEX idx_audit_checkpoints_kind ON audit_checkpoints (kind, chain_id, seq);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

-- Retention. SQLite has no roles: whoever can open the file can do anything to it. What we can do is make
-- deletion a deliberate act of one code path: a delete passes only while the retention job holds a row in
-- this gate (inside its own transaction), and only for chained rows that a retention checkpoint covers.
CREATE TABLE audit_retention_gate (
    opened_at TEXT NOT NULL
) STRICT;

DROP TRIGGER audit_logs_no_delete;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
WHEN NOT EXISTS (SELECT 1 FROM audit_retention_gate)
  OR (OLD.seq IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM audit_checkpoints c
        WHERE c.kind = 'retention'
          AND c.chain_id = coalesce(OLD.client_id, X'00000000000000000000000000000000')
          AND c.seq >= OLD.seq))
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only');
END;

-- Per-client retention override in days (NULL: the platform default), clamped to the platform maximum.
ALTER TABLE clients ADD COLUMN audit_retention_days INTEGER CHECK (audit_retention_days BETWEEN 1 AND 3650);
