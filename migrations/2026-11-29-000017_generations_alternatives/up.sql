-- Swipes that are kept. Every finished generation keeps the text it wrote (`content`), so the
-- alternatives of a reply (its generations, all pointing at the same reply message) can be
-- listed and any of them picked again: the picked one is the generation whose status is
-- 'done', and its text is the reply message's. A continuation records the text it extends
-- (`prefix`), so that whoever takes a dead writer's continuation over extends the same text.
ALTER TABLE generations ADD COLUMN content text;
ALTER TABLE generations ADD COLUMN prefix text;

-- The finished generations written before this column: the live one's text is its message's,
-- a swiped-away one's is what it streamed.
UPDATE generations g SET content = m.content
FROM chat_messages m
WHERE g.status = 'done' AND m.id = g.reply_message_id;
UPDATE generations SET content = NULLIF(btrim(
    (SELECT string_agg(t.token, '' ORDER BY t.n)
     FROM jsonb_array_elements_text(tokens) WITH ORDINALITY AS t (token, n))), '')
WHERE status = 'superseded' AND reply_message_id IS NOT NULL AND content IS NULL;
