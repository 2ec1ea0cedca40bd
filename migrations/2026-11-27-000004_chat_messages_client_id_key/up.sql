-- messages::insert_idempotent: a client-supplied id is unique per user.
CREATE UNIQUE INDEX CONCURRENTLY chat_messages_client_id_key
    ON chat_messages (user_id, client_id) WHERE client_id IS NOT NULL;
