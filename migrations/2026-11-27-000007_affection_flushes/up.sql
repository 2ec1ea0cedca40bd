-- Affection write-behind: each flush of a pending delta from Redis carries an id, recorded in the
-- same transaction as the update. Re-applying a flush (a replica died between taking a delta
-- and forgetting it) is then a no-op: no point is counted twice.
CREATE TABLE affection_flushes (
    id          uuid PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
