-- The cascade when a photo goes (ON DELETE SET NULL looks messages up by photo_id): without it
-- every deleted photo would scan the whole message table.
CREATE INDEX CONCURRENTLY chat_messages_photo_idx ON chat_messages (photo_id) WHERE photo_id IS NOT NULL;
