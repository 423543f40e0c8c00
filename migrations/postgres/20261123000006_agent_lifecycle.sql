-- The full agent lifecycle (PostgreSQL dialect): `starting` (container started, waiting for its health check)
-- and `stopping` (stop requested, container being stopped) join the states, and the reconciler's crash record
-- survives a platform restart: how often it restarted the agent, the times of its recent crashes, and which
-- container exit it last counted (the runtime's FinishedAt), so one exit is never counted twice.
ALTER TABLE agents DROP CONSTRAINT agents_status_check;
ALTER TABLE agents ADD CONSTRAINT agents_status_check
    CHECK (status IN ('provisioning', 'starting', 'running', 'stopping', 'stopped', 'error', 'deleting'));
ALTER TABLE agents ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0 CHECK (restart_count >= 0);
ALTER TABLE agents ADD COLUMN recent_crashes JSONB NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE agents ADD COLUMN last_exit_counted TEXT CHECK (length(last_exit_counted) <= 64);
