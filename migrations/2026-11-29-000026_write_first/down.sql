DROP TABLE nudges;
DROP TABLE match_settings;
DROP TABLE user_settings;
