-- generations::started_since: a user's replies of the last day, for the per-user quota that keeps
-- a paid provider from being drained.
CREATE INDEX CONCURRENTLY generations_user_started_idx ON generations (user_id, started_at);
