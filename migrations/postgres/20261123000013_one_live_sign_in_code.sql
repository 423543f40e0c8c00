-- At most one live (unconsumed) sign-in code per address, enforced by the database: a new code replaces the
-- live one in a single upsert, so parallel requests for the same address cannot leave several codes that all
-- work. Codes that are live side by side from before this migration are closed, all but the newest.
UPDATE sign_in_codes SET consumed_at = created_at
 WHERE consumed_at IS NULL
   AND id <> (SELECT c.id FROM sign_in_codes c
               WHERE c.email = sign_in_codes.email AND c.consumed_at IS NULL
               ORDER BY c.created_at DESC, c.id DESC LIMIT 1);
CREATE UNIQUE INDEX idx_sign_in_codes_one_live ON sign_in_codes (email) WHERE consumed_at IS NULL;
