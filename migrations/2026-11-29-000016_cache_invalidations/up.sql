-- Cached keys a write could not update or drop because its process could not reach Redis.
-- Every process that can reach Redis drops each recorded key twice (when it first sees it, and
-- once more two seconds later), so that no replica goes on serving a value another replica's
-- write made stale. Rows older than a minute are deleted by the same processes.
CREATE TABLE cache_invalidations (
    id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL,
    at  timestamptz NOT NULL DEFAULT now()
);
-- invalidations::recent: what every process replays.
CREATE INDEX cache_invalidations_at_idx ON cache_invalidations (at);
