DROP TABLE storage_purges;
-- Rows of deleted accounts cannot get their user back; they only mattered for an hour.
DELETE FROM session_revocations WHERE user_id IS NULL;
ALTER TABLE session_revocations ALTER COLUMN user_id SET NOT NULL;
