-- Photo generation jobs. Any replica of the media service claims the oldest runnable job with
-- FOR UPDATE SKIP LOCKED and holds it under a lease it renews while working; a replica that dies
-- stops renewing, and another one takes the job over once the lease has run out. A job is
-- finished in one transaction that checks it still holds the lease (its attempt number), so
-- a photo is delivered exactly once however many replicas tried.
CREATE TABLE photo_jobs (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    character_id text NOT NULL,
    prompt       text CHECK (char_length(prompt) BETWEEN 1 AND 500),
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    -- When a queued job may run (a failed attempt backs off).
    run_after    timestamptz NOT NULL DEFAULT now(),
    photo_id     bigint REFERENCES received_photos (id) ON DELETE SET NULL,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    FOREIGN KEY (user_id, character_id) REFERENCES matches (user_id, character_id) ON DELETE CASCADE
);
-- photo_jobs::claim: the runnable jobs, oldest first. Small: finished jobs leave it.
CREATE INDEX photo_jobs_queue_idx ON photo_jobs (run_after, created_at) WHERE status IN ('queued', 'running');
-- photo_jobs::pending_for_user (the per-user cap) and the cascade from matches.
CREATE INDEX photo_jobs_user_idx ON photo_jobs (user_id, character_id);
-- The cascade when a photo goes.
CREATE INDEX photo_jobs_photo_idx ON photo_jobs (photo_id) WHERE photo_id IS NOT NULL;

-- A photo the character sends shows in the conversation as a message that carries it. All
-- NULL when added, so no row is rewritten; the foreign key is checked from here on (NOT VALID
-- skips the scan of existing rows, which can only be NULL).
ALTER TABLE chat_messages ADD COLUMN photo_id bigint;
ALTER TABLE chat_messages ADD CONSTRAINT chat_messages_photo_id_fkey
    FOREIGN KEY (photo_id) REFERENCES received_photos (id) ON DELETE SET NULL NOT VALID;
