-- One row per counted gateway use of a scope (an `api:outbound` connection), PostgreSQL dialect. Kept in step
-- with migrations/sqlite. Rate limits count these rows in the last hour and the last day, so they hold across
-- server restarts and across server processes sharing the database. Rows older than a day are pruned.
CREATE TABLE gateway_rate_events (
    id        BIGSERIAL PRIMARY KEY,
    agent_id  UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    client_id UUID NOT NULL REFERENCES clients (id),
    scope     TEXT NOT NULL CHECK (length(scope) BETWEEN 1 AND 40),
    at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_gateway_rate_events_window ON gateway_rate_events (agent_id, scope, at);
CREATE INDEX idx_gateway_rate_events_at ON gateway_rate_events (at);
