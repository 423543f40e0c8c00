-- Live audit (SQLite): nothing to store. One process owns the file, and `audit::append` announces each event
-- to that process's viewers directly (see src/audit/live.rs). Kept so both backends share version numbers.
SELECT 1;
