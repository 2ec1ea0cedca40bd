-- photos::latest (keyset on (received_at, id)) and the cascade from matches.
CREATE INDEX CONCURRENTLY received_photos_gallery_idx
    ON received_photos (user_id, character_id, received_at DESC, id DESC);
