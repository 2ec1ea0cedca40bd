DROP TABLE affection_flushes;
