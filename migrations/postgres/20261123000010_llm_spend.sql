-- What each agent spent on model calls through the LLM gateway, per UTC day, PostgreSQL dialect. Kept in
-- step with migrations/sqlite. Only counters: prompts and completions are never stored. `alerted_percent` is
-- the highest budget alert (50, 80, 100) already sent for that day, so each is sent once.
CREATE TABLE agent_spend (
    agent_id        UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    client_id       UUID NOT NULL REFERENCES clients (id),
    day             DATE NOT NULL,
    spent_micro_usd BIGINT NOT NULL DEFAULT 0 CHECK (spent_micro_usd >= 0),
    calls           BIGINT NOT NULL DEFAULT 0 CHECK (calls >= 0),
    input_tokens    BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    alerted_percent INTEGER NOT NULL DEFAULT 0 CHECK (alerted_percent IN (0, 50, 80, 100)),
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, day)
);
CREATE INDEX idx_agent_spend_client_day ON agent_spend (client_id, day);
