-- messages::unread_count, messages::mark_read and the unread counts of matches::list_with_last_message.
-- Queries must say NOT is_read literally (no bind parameter) for the planner to prove the predicate.
CREATE INDEX CONCURRENTLY chat_messages_unread_idx
    ON chat_messages (user_id, character_id) WHERE NOT is_read;
