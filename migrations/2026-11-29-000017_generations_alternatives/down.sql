ALTER TABLE generations DROP COLUMN prefix;
ALTER TABLE generations DROP COLUMN content;
