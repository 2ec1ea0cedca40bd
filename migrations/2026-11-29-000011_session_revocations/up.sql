-- Session families that were logged out, or whose refresh token was replayed. This table is the
-- truth every process's in-memory revocation set is loaded from (Redis only carries the news
-- faster). A row matters while an access token of its family can still be valid, i.e. for the
-- access-token lifetime; maintenance deletes older rows. No foreign key to users: a deleted
-- account's tokens must stay refused until they expire.
CREATE TABLE session_revocations (
    family_id  uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
-- sessions::revocations_since: what every process polls.
CREATE INDEX session_revocations_revoked_at_idx ON session_revocations (revoked_at);
