-- Characters of one's own. A character with an owner is private: only its owner sees it, matches
-- with it or chats with it; the public catalogue is the characters without one. Deleting the
-- account deletes its characters (and, through matches, their conversations).
-- Expand only: every new column has a default or is nullable, so old pods keep working.
ALTER TABLE characters
    ADD COLUMN owner_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    ADD COLUMN example_dialogue text NOT NULL DEFAULT '',
    -- The avatar's key in media storage (`avatars/{owner}/{character}/{uuid}.png`); NULL: none.
    ADD COLUMN avatar_key       text,
    -- What an imported Character Card carried that Dream has no column for (personality,
    -- scenario, alternate greetings, character book, extensions, …): given back on export.
    ADD COLUMN card_extras      jsonb NOT NULL DEFAULT '{}'::jsonb;

-- characters::owned_by (a user's own characters) and the cascade from users. The table is small
-- (the catalogue plus what users write), so no CONCURRENTLY.
CREATE INDEX characters_owner_idx ON characters (owner_id, name, id) WHERE owner_id IS NOT NULL;
