-- A client's idempotency key for a reply it asked for (`Idempotency-Key`): asking again with it
-- follows or replays that reply instead of writing one more version.
ALTER TABLE generations ADD COLUMN client_key uuid;
