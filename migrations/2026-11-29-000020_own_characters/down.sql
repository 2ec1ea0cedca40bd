DELETE FROM characters WHERE owner_id IS NOT NULL;
DROP INDEX characters_owner_idx;
ALTER TABLE characters
    DROP COLUMN card_extras,
    DROP COLUMN avatar_key,
    DROP COLUMN example_dialogue,
    DROP COLUMN owner_id;
