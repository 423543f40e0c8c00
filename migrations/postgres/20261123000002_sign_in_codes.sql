-- One-time sign-in codes and the throttle that limits sending and guessing them (PostgreSQL dialect).

-- A code is stored only as a keyed hash. `email` is the normalised address it was sent to; it may belong to
-- no account (the answer to "send me a code" never reveals that).
CREATE TABLE sign_in_codes (
    id          UUID PRIMARY KEY,
    email       TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    code_hash   BYTEA NOT NULL CHECK (length(code_hash) = 32),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
);
CREATE INDEX idx_sign_in_codes_email ON sign_in_codes (email, created_at);

-- Throttle events: one row per code sent or failed attempt, per bucket (`ip:203.0.113.9`,
-- `account:ada@example.com`). Counted over a sliding window; old rows are pruned.
CREATE TABLE auth_throttle (
    id         BIGSERIAL PRIMARY KEY,
    bucket     TEXT NOT NULL CHECK (length(bucket) BETWEEN 1 AND 300),
    kind       TEXT NOT NULL CHECK (kind IN ('code_sent', 'failure')),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_auth_throttle_bucket ON auth_throttle (bucket, kind, created_at);
