-- A running generation holds a lease, renewed while its tokens flow: a generation whose process
-- died is taken over once its lease has run out, instead of blocking its conversation for good.
-- A swipe records the reply it rewrites, so that whoever takes it over rewrites the same one.
ALTER TABLE generations ADD COLUMN lease_until timestamptz;
ALTER TABLE generations ADD COLUMN replaces_message_id bigint REFERENCES chat_messages (id) ON DELETE SET NULL;
