-- Dashboard sessions and the devices each user has signed in from (SQLite dialect).

-- One row per browser session. The cookie holds a 128-bit random id; only its SHA-256 is stored, so a copy
-- of this table cannot be replayed as cookies. `handle` names the session on the "active sessions" page.
-- `user_id`/`client_id`/`ip`/`user_agent` are copied out of the session data so sessions can be listed and
-- revoked per user; `data` is the session itself (JSON, no secrets).
CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY NOT NULL CHECK (length(id_hash) = 32),
    handle       BLOB NOT NULL UNIQUE CHECK (length(handle) = 16),
    client_id    BLOB REFERENCES clients (id) ON DELETE CASCADE,
    user_id      BLOB REFERENCES users (id) ON DELETE CASCADE,
    data         TEXT NOT NULL CHECK (length(data) <= 16384),
    ip           TEXT CHECK (length(ip) <= 64),
    user_agent   TEXT CHECK (length(user_agent) <= 512),
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;
CREATE INDEX idx_sessions_user ON sessions (user_id);
CREATE INDEX idx_sessions_expires ON sessions (expires_at);

-- Devices (user agent + network) a user completed a sign-in from; a sign-in from an unseen one is alerted.
CREATE TABLE known_devices (
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    fingerprint   BLOB NOT NULL CHECK (length(fingerprint) = 32),
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, fingerprint)
) STRICT;
