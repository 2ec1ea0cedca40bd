-- A deleted account leaves nothing that names it. Its session families stay refused until
-- their access tokens have expired (the revocation row is what refuses them), but the row no
-- longer says whose they were: the account's deletion clears user_id. Dropping NOT NULL is
-- instant and old code never writes NULL (expand).
ALTER TABLE session_revocations ALTER COLUMN user_id DROP NOT NULL;

-- Everything stored under a prefix that the media service is to delete: a deleted account's
-- photos, their renditions, and any file a photo job still in flight writes after the
-- deletion. Written in the same transaction as the account's deletion, so no image can be
-- forgotten by a crash; the media service lists and deletes the prefix twice (at once, and
-- again after a photo job's lease has surely run out), then deletes the row. Deleting a file
-- twice is harmless, so replicas need not coordinate. The CHECK keeps a purge from ever
-- naming the whole store.
CREATE TABLE storage_purges (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix     text NOT NULL CHECK (prefix ~ '^[a-z]+/[0-9a-f-]{36}/$'),
    passes     integer NOT NULL DEFAULT 0,
    run_after  timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- account::purges_due: what every media replica polls (a handful of rows at most).
CREATE INDEX storage_purges_run_after_idx ON storage_purges (run_after);
