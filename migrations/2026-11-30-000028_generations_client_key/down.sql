ALTER TABLE generations DROP COLUMN client_key;
