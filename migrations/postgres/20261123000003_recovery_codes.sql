-- Single-use recovery codes for a user who lost their authenticator (PostgreSQL dialect). Stored as argon2id
-- PHC strings only; generating a new set deletes the old one.
CREATE TABLE recovery_codes (
    id         UUID PRIMARY KEY,
    client_id  UUID NOT NULL REFERENCES clients (id),
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL CHECK (code_hash LIKE '$argon2id$%'),
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX idx_recovery_codes_user ON recovery_codes (user_id);
