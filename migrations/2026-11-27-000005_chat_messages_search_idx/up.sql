-- messages::search: one user's messages matching a French full-text query.
CREATE INDEX CONCURRENTLY chat_messages_search_idx
    ON chat_messages USING gin (user_id, search_vector);
