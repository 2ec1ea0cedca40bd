DROP TABLE refresh_sessions;
DROP TABLE memories;
DROP TABLE received_photos;
DROP TABLE chat_messages;
DROP TABLE matches;
DROP TABLE characters;
DROP TABLE users;
DROP TYPE message_sender;
DROP EXTENSION IF EXISTS btree_gin;
