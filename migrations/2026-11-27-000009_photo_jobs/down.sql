ALTER TABLE chat_messages DROP COLUMN photo_id;
DROP TABLE photo_jobs;
