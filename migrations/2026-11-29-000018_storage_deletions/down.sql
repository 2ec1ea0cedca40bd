DROP TRIGGER received_photos_forget_files ON received_photos;
DROP FUNCTION received_photos_forget_files();
DROP TABLE storage_deletions;
