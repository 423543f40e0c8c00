-- What an agent needs to run (PostgreSQL dialect): its /28 in the platform's agent network pool (block index,
-- unique while assigned), the SHA-256 of its gateway token (the token itself is only in its container), and why
-- it is in `error`.
ALTER TABLE agents ADD COLUMN network_block INTEGER CHECK (network_block BETWEEN 0 AND 65535);
ALTER TABLE agents ADD COLUMN gateway_token_hash BYTEA CHECK (length(gateway_token_hash) = 32);
ALTER TABLE agents ADD COLUMN status_reason TEXT CHECK (length(status_reason) <= 1000);
CREATE UNIQUE INDEX idx_agents_network_block ON agents (network_block);
