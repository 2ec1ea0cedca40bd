ALTER TABLE generations DROP COLUMN replaces_message_id;
ALTER TABLE generations DROP COLUMN lease_until;
