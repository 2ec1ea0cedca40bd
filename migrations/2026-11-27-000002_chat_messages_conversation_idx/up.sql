-- messages::latest (keyset on (created_at, id)), messages::page, matches::list_with_last_message's
-- last message, the search filter by conversation, and the cascade from matches.
CREATE INDEX CONCURRENTLY chat_messages_conversation_idx
    ON chat_messages (user_id, character_id, created_at DESC, id DESC);
