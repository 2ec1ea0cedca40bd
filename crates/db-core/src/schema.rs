//! The database schema as diesel sees it. Kept by hand in step with `migrations/`; the test
//! `schema_rs_matches_the_migrated_database` (tests/it/schema.rs) compares the two, column by
//! column, in `make test`. The generated `search_vector` columns are left out on purpose: only
//! hand-written search SQL reads them, and nothing writes them.

pub mod sql_types {
    /// The `message_sender` Postgres enum.
    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType, Debug, Clone, Copy)]
    #[diesel(postgres_type(name = "message_sender"))]
    pub struct MessageSender;
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        xp -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    characters (id) {
        id -> Text,
        name -> Text,
        tagline -> Text,
        persona -> Text,
        greeting -> Text,
        tags -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        owner_id -> Nullable<Uuid>,
        example_dialogue -> Text,
        avatar_key -> Nullable<Text>,
        card_extras -> Jsonb,
    }
}

diesel::table! {
    matches (user_id, character_id) {
        user_id -> Uuid,
        character_id -> Text,
        affection -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::MessageSender;

    chat_messages (id) {
        id -> Int8,
        user_id -> Uuid,
        character_id -> Text,
        sender -> MessageSender,
        content -> Text,
        is_read -> Bool,
        client_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        photo_id -> Nullable<Int8>,
    }
}

diesel::table! {
    received_photos (id) {
        id -> Int8,
        user_id -> Uuid,
        character_id -> Text,
        storage_key -> Text,
        content_type -> Text,
        width -> Int4,
        height -> Int4,
        prompt -> Nullable<Text>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    memories (id) {
        id -> Int8,
        user_id -> Uuid,
        character_id -> Text,
        content -> Text,
        source_message_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    session_revocations (family_id) {
        family_id -> Uuid,
        user_id -> Nullable<Uuid>,
        revoked_at -> Timestamptz,
    }
}

diesel::table! {
    cache_invalidations (id) {
        id -> Int8,
        key -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    generations (id) {
        id -> Uuid,
        user_id -> Uuid,
        character_id -> Text,
        user_message_id -> Int8,
        reply_message_id -> Nullable<Int8>,
        status -> Text,
        provider -> Text,
        tokens -> Jsonb,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        lease_until -> Nullable<Timestamptz>,
        replaces_message_id -> Nullable<Int8>,
        content -> Nullable<Text>,
        prefix -> Nullable<Text>,
        client_key -> Nullable<Uuid>,
    }
}

diesel::table! {
    storage_deletions (id) {
        id -> Int8,
        storage_key -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    photo_jobs (id) {
        id -> Uuid,
        user_id -> Uuid,
        character_id -> Text,
        prompt -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        lease_until -> Nullable<Timestamptz>,
        run_after -> Timestamptz,
        photo_id -> Nullable<Int8>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    user_settings (user_id) {
        user_id -> Uuid,
        time_zone -> Text,
        write_first -> Bool,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    match_settings (user_id, character_id) {
        user_id -> Uuid,
        character_id -> Text,
        write_first -> Bool,
        write_first_after_s -> Nullable<Int4>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    nudges (id) {
        id -> Uuid,
        user_id -> Uuid,
        character_id -> Text,
        after_message_id -> Int8,
        status -> Text,
        attempts -> Int4,
        lease_until -> Nullable<Timestamptz>,
        run_after -> Timestamptz,
        message_id -> Nullable<Int8>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    storage_purges (id) {
        id -> Int8,
        prefix -> Text,
        passes -> Int4,
        run_after -> Timestamptz,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(matches -> users (user_id));
diesel::joinable!(matches -> characters (character_id));
diesel::joinable!(refresh_sessions -> users (user_id));
diesel::joinable!(characters -> users (owner_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    characters,
    matches,
    chat_messages,
    received_photos,
    memories,
    refresh_sessions,
    session_revocations,
    cache_invalidations,
    generations,
    photo_jobs,
    user_settings,
    match_settings,
    nudges,
    storage_purges,
    storage_deletions,
);
