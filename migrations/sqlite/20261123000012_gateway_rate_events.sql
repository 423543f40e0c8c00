-- One row per counted gateway use of a scope (an `api:outbound` connection), SQLite dialect. Kept in step with
-- migrations/postgres. Rate limits count these rows in the last hour and the last day, so they hold across
-- server restarts and across server processes sharing the database. Rows older than a day are pruned.
CREATE TABLE gateway_rate_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id  BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    client_id BLOB NOT NULL REFERENCES clients (id),
    scope     TEXT NOT NULL CHECK (length(scope) BETWEEN 1 AND 40),
    at        TEXT NOT NULL
) STRICT;
CREATE INDEX idx_gateway_rate_events_window ON gateway_rate_events (agent_id, scope, at);
CREATE INDEX idx_gateway_rate_events_at ON gateway_rate_events (at);
