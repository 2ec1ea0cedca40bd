-- Stored images whose photo row is gone (an unmatch, an account deletion, any delete that
-- reaches received_photos, cascades included): a trigger records their keys in the same
-- transaction as the delete, so no path can forget them, and the media service's workers
-- delete the files (and their renditions) from storage, then the rows. Deleting a file twice
-- is harmless, so replicas need not coordinate.
CREATE TABLE storage_deletions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    storage_key text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION received_photos_forget_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO storage_deletions (storage_key) SELECT storage_key FROM gone;
    RETURN NULL;
END
$$;

CREATE TRIGGER received_photos_forget_files
    AFTER DELETE ON received_photos
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION received_photos_forget_files();
