-- Billing (docs/billing.md), SQLite dialect. Kept in step with migrations/postgres.
-- `billing_subscriptions` mirrors each client's Stripe subscription; Stripe is the source of truth. The two
-- `*_event_at` columns are monotonic markers (the Stripe `created` time, in seconds, of the last event applied to
-- the subscription and to its payments): an older event arriving late changes nothing.
-- `billing_events` holds every webhook event id processed, inserted in the same transaction as its effect, so
-- each event takes effect exactly once however often Stripe delivers it.
CREATE TABLE billing_subscriptions (
    client_id              BLOB PRIMARY KEY NOT NULL REFERENCES clients (id) CHECK (length(client_id) = 16),
    stripe_customer_id     TEXT UNIQUE CHECK (length(stripe_customer_id) BETWEEN 1 AND 255),
    stripe_subscription_id TEXT UNIQUE CHECK (length(stripe_subscription_id) BETWEEN 1 AND 255),
    status                 TEXT NOT NULL DEFAULT 'none' CHECK (status IN ('none', 'incomplete',
                               'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid',
                               'paused')),
    plan                   TEXT NOT NULL DEFAULT 'trial' CHECK (length(plan) BETWEEN 1 AND 32),
    current_period_end     TEXT,
    subscription_event_at  INTEGER NOT NULL DEFAULT 0,
    payment_event_at       INTEGER NOT NULL DEFAULT 0,
    grace_until            TEXT,
    suspended_at           TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
) STRICT;
CREATE INDEX idx_billing_grace ON billing_subscriptions (grace_until) WHERE grace_until IS NOT NULL;

CREATE TABLE billing_events (
    event_id     TEXT PRIMARY KEY NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type   TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 255),
    client_id    BLOB REFERENCES clients (id),
    processed_at TEXT NOT NULL
) STRICT;
