-- One row per character reply generated for a user message. Exactly once: a user message has
-- at most one live generation (a regenerate supersedes the old one), and a conversation has at
-- most one generation running at a time, across every replica of the ai service.
CREATE TABLE generations (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL,
    character_id     text NOT NULL,
    user_message_id  bigint NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
    reply_message_id bigint REFERENCES chat_messages (id) ON DELETE SET NULL,
    status           text NOT NULL CHECK (status IN ('running', 'done', 'failed', 'superseded')),
    provider         text NOT NULL,
    -- The reply as generated so far, token by token (a JSON array of strings): what a client
    -- that reconnects is replayed.
    tokens           jsonb NOT NULL DEFAULT '[]',
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
    -- No foreign key to matches: unmatching deletes the messages, and with them (cascade on
    -- user_message_id) their generations.
);
-- generations::for_message: the live generation of a user message (exactly once).
CREATE UNIQUE INDEX generations_message_key ON generations (user_message_id) WHERE status <> 'superseded';
-- generations::claim: at most one running per conversation.
CREATE UNIQUE INDEX generations_running_key ON generations (user_id, character_id) WHERE status = 'running';
-- The cascade when a reply message is deleted.
CREATE INDEX generations_reply_idx ON generations (reply_message_id) WHERE reply_message_id IS NOT NULL;
