-- Dream's core tables. Indexes on the tables that grow without bound (chat_messages,
-- received_photos) are built CONCURRENTLY in the migrations that follow, outside a transaction.
-- Every index names the query it serves; db-core's EXPLAIN tests prove the planner uses it.

-- GIN over (user_id, search_vector): every search is one user's, and a single index scan that
-- intersects the user with the words beats a bitmap AND of two large scans by ~100x.
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TYPE message_sender AS ENUM ('user', 'character', 'system');

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL CHECK (email = lower(email) AND char_length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    display_name  text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    xp            bigint NOT NULL DEFAULT 0 CHECK (xp >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- users::find_by_email (login) and the uniqueness of an account.
CREATE UNIQUE INDEX users_email_key ON users (email);
-- users::top_by_xp and users::rank_of (leaderboard).
CREATE INDEX users_xp_idx ON users (xp DESC, id);

CREATE TABLE characters (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    tagline     text NOT NULL DEFAULT '',
    persona     text NOT NULL,
    greeting    text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A user's relationship with a character. Deleting a user removes their matches; a character
-- that someone is matched with cannot be deleted (RESTRICT): retire it instead.
CREATE TABLE matches (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    character_id text NOT NULL REFERENCES characters (id) ON DELETE RESTRICT,
    affection    integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- matches::get, matches::list_with_last_message and the foreign keys below.
    PRIMARY KEY (user_id, character_id)
);

-- Messages belong to a match: no match, no conversation; unmatching deletes the conversation.
-- is_read concerns what the user received: the user's own messages are stored read.
CREATE TABLE chat_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid NOT NULL,
    character_id text NOT NULL,
    sender       message_sender NOT NULL,
    content      text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 8000),
    is_read      boolean NOT NULL DEFAULT false,
    -- Client-supplied idempotency key, unique per user (see the client_id_key migration).
    client_id    uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- French full-text vector, computed once on write. Searches test this column, so they cannot
    -- drift from the index (the guide's expression mismatch), and ranking reads it instead of
    -- re-parsing every matching message.
    search_vector tsvector GENERATED ALWAYS AS (to_tsvector('french', content)) STORED,
    FOREIGN KEY (user_id, character_id) REFERENCES matches (user_id, character_id) ON DELETE CASCADE
);

CREATE TABLE received_photos (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid NOT NULL,
    character_id text NOT NULL,
    storage_key  text NOT NULL,
    content_type text NOT NULL,
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    prompt       text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, character_id) REFERENCES matches (user_id, character_id) ON DELETE CASCADE
);

-- What a character remembers about a user. A memory drawn from a message goes when the message goes.
CREATE TABLE memories (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           uuid NOT NULL,
    character_id      text NOT NULL,
    content           text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 2000),
    source_message_id bigint REFERENCES chat_messages (id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    search_vector     tsvector GENERATED ALWAYS AS (to_tsvector('french', content)) STORED,
    FOREIGN KEY (user_id, character_id) REFERENCES matches (user_id, character_id) ON DELETE CASCADE
);
-- memories::list (newest first, keyset) and the cascade from matches.
CREATE INDEX memories_owner_idx ON memories (user_id, character_id, created_at DESC, id DESC);
-- memories::search.
CREATE INDEX memories_search_idx ON memories USING gin (user_id, search_vector);
-- The cascade when a message is deleted (memories::by_source_message).
CREATE INDEX memories_source_message_idx ON memories (source_message_id) WHERE source_message_id IS NOT NULL;

-- One row per refresh token. Tokens rotate: using one marks it used and issues its successor in the
-- same family; presenting a used token again revokes the whole family.
CREATE TABLE refresh_sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- sessions::find_by_token_hash (refresh, logout).
CREATE UNIQUE INDEX refresh_sessions_token_hash_key ON refresh_sessions (token_hash);
-- sessions::revoke_family (reuse detection).
CREATE INDEX refresh_sessions_family_idx ON refresh_sessions (family_id);
-- sessions::revoke_all_for_user and the cascade from users.
CREATE INDEX refresh_sessions_user_idx ON refresh_sessions (user_id);
