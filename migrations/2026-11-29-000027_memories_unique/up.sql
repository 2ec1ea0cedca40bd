-- No memory twice per match: the same fact, whatever its case, spacing or punctuation, is one
-- memory. Duplicates already stored are merged into their oldest copy first (it keeps the
-- newest updated_at, so the eviction order still sees it as recently confirmed).
UPDATE memories m SET updated_at = d.latest
FROM (
    SELECT min(id) AS keep, max(updated_at) AS latest
    FROM memories
    GROUP BY user_id, character_id,
             md5(lower(btrim(regexp_replace(content, '[[:space:][:punct:]]+', ' ', 'g'))))
    HAVING count(*) > 1
) d
WHERE m.id = d.keep;
DELETE FROM memories m
USING memories k
WHERE k.user_id = m.user_id AND k.character_id = m.character_id
  AND md5(lower(btrim(regexp_replace(k.content, '[[:space:][:punct:]]+', ' ', 'g'))))
    = md5(lower(btrim(regexp_replace(m.content, '[[:space:][:punct:]]+', ' ', 'g'))))
  AND k.id < m.id;
-- memories::insert (ON CONFLICT on this expression) and memories::update.
CREATE UNIQUE INDEX memories_normalized_key ON memories (
    user_id, character_id,
    md5(lower(btrim(regexp_replace(content, '[[:space:][:punct:]]+', ' ', 'g'))))
);
