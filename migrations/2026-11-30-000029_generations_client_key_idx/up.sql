-- One generation per user and key; looked up by both when a request comes with a key.
CREATE UNIQUE INDEX CONCURRENTLY generations_client_key ON generations (user_id, client_key)
    WHERE client_key IS NOT NULL;
