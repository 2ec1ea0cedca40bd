DROP INDEX CONCURRENTLY generations_client_key;
