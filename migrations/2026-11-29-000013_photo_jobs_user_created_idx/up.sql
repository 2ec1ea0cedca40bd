-- photo_jobs::enqueue: a user's photo requests of the last day, for the daily cap that keeps an
-- image API (and the disk) from being drained by one account.
CREATE INDEX CONCURRENTLY photo_jobs_user_created_idx ON photo_jobs (user_id, created_at);
