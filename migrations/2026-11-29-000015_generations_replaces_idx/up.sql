-- The SET NULL from chat_messages when a swiped reply is deleted.
CREATE INDEX CONCURRENTLY generations_replaces_idx ON generations (replaces_message_id)
    WHERE replaces_message_id IS NOT NULL;
