DROP INDEX memories_normalized_key;
