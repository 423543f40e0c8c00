-- Where each client's audit events are forwarded (SIEM), SQLite dialect. Kept in step with
-- migrations/postgres. `cursor_event_id` is the id of the last audit event the destination acknowledged; the
-- forwarder only ever moves it forward. The lease lets one forwarder at a time deliver to a destination when
-- several server processes share the database.
CREATE TABLE siem_destinations (
    id                BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    client_id         BLOB NOT NULL REFERENCES clients (id),
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind              TEXT NOT NULL CHECK (kind IN ('syslog_tcp', 'syslog_tls', 'https_json')),
    host              TEXT CHECK (length(host) BETWEEN 1 AND 253),
    port              INTEGER CHECK (port BETWEEN 1 AND 65535),
    url               TEXT CHECK (length(url) BETWEEN 9 AND 2048),
    ca_pem            TEXT CHECK (length(ca_pem) <= 65536),
    enabled           INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    cursor_event_id   INTEGER NOT NULL DEFAULT 0 CHECK (cursor_event_id >= 0),
    last_delivered_at TEXT,
    last_error        TEXT CHECK (length(last_error) <= 1000),
    last_error_at     TEXT,
    lease_owner       BLOB CHECK (length(lease_owner) = 16),
    lease_until       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (client_id, name),
    CHECK ((kind = 'https_json' AND url IS NOT NULL AND host IS NULL AND port IS NULL)
        OR (kind <> 'https_json' AND url IS NULL AND host IS NOT NULL AND port IS NOT NULL))
) STRICT;
CREATE INDEX idx_siem_client ON siem_destinations (client_id);
