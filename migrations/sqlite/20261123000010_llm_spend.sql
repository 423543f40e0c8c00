-- What each agent spent on model calls through the LLM gateway, per UTC day, SQLite dialect. Kept in step
-- with migrations/postgres. Only counters: prompts and completions are never stored. `alerted_percent` is the
-- highest budget alert (50, 80, 100) already sent for that day, so each is sent once.
CREATE TABLE agent_spend (
    agent_id        BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    client_id       BLOB NOT NULL REFERENCES clients (id),
    day             TEXT NOT NULL CHECK (length(day) = 10),
    spent_micro_usd INTEGER NOT NULL DEFAULT 0 CHECK (spent_micro_usd >= 0),
    calls           INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0),
    input_tokens    INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    alerted_percent INTEGER NOT NULL DEFAULT 0 CHECK (alerted_percent IN (0, 50, 80, 100)),
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (agent_id, day)
) STRICT;
CREATE INDEX idx_agent_spend_client_day ON agent_spend (client_id, day);
