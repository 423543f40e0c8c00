-- Single-use recovery codes for a user who lost their authenticator (SQLite dialect). Stored as argon2id PHC
-- strings only; generating a new set deletes the old one.
CREATE TABLE recovery_codes (
    id         BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    client_id  BLOB NOT NULL REFERENCES clients (id),
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL CHECK (code_hash LIKE '$argon2id$%'),
    created_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;
CREATE INDEX idx_recovery_codes_user ON recovery_codes (user_id);
