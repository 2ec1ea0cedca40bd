-- Characters who write first. A user's settings (time zone for the quiet hours, and whether
-- characters may write first at all); a row only for users who changed a default.
CREATE TABLE user_settings (
    user_id            uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- An IANA name (Europe/Paris), checked by the service against the tz database it ships.
    time_zone          text NOT NULL DEFAULT 'UTC' CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    write_first        boolean NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- One match's settings: whether its character writes first, and after how long a silence
-- (NULL: the service's default, AI_WRITE_FIRST_AFTER_S).
CREATE TABLE match_settings (
    user_id            uuid NOT NULL,
    character_id       text NOT NULL,
    write_first        boolean NOT NULL DEFAULT true,
    write_first_after_s integer CHECK (write_first_after_s BETWEEN 1 AND 31536000),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, character_id),
    FOREIGN KEY (user_id, character_id) REFERENCES matches (user_id, character_id) ON DELETE CASCADE
);

-- The messages characters write first, as durable jobs (the photo_jobs pattern: claimed with
-- FOR UPDATE SKIP LOCKED under a lease renewed while the text is written; finished in one
-- transaction that checks the attempt still holds it). One row per silence: the silence that
-- followed message `after_message_id`. The unique key is what makes a silence answered at most
-- once, by any number of replicas, across restarts and after any downtime.
CREATE TABLE nudges (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL,
    character_id     text NOT NULL,
    after_message_id bigint NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'cancelled', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    lease_until      timestamptz,
    -- Not before (the silence's end, or the morning after the user's quiet hours).
    run_after        timestamptz NOT NULL,
    message_id       bigint REFERENCES chat_messages (id) ON DELETE SET NULL,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    FOREIGN KEY (user_id, character_id) REFERENCES matches (user_id, character_id) ON DELETE CASCADE
);
-- One nudge per silence; also the cascade from matches.
CREATE UNIQUE INDEX nudges_silence_key ON nudges (user_id, character_id, after_message_id);
-- nudges::claim: the runnable ones, soonest first. Small: finished rows leave it.
CREATE INDEX nudges_queue_idx ON nudges (run_after) WHERE status IN ('queued', 'running');
-- "Is the newest message a nudge?" (never write first twice in a row), and the cascade from
-- chat_messages.
CREATE INDEX nudges_message_idx ON nudges (message_id) WHERE message_id IS NOT NULL;
-- The cascade when an anchoring message goes.
CREATE INDEX nudges_after_message_idx ON nudges (after_message_id);
