//! Characters: the public catalogue (no owner) and the characters users write for themselves
//! (an owner; nobody else ever reads them).

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::models::{Character, CharacterChanges, CharacterDraft};
use crate::schema::{characters, matches, received_photos};

/// The public catalogue.
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Character>> {
    characters::table
        .filter(characters::owner_id.is_null())
        .order((characters::name, characters::id))
        .select(Character::as_select())
        .load(conn)
        .await
}

#[cfg(feature = "testing")]
pub async fn get(conn: &mut AsyncPgConnection, id: &str) -> QueryResult<Option<Character>> {
    characters::table
        .find(id)
        .select(Character::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts or updates characters by id; returns how many rows were written.
pub async fn upsert(conn: &mut AsyncPgConnection, rows: &[Character]) -> QueryResult<usize> {
    let stmt = diesel::insert_into(characters::table)
        .values(rows)
        .on_conflict(characters::id)
        .do_update()
        .set((
            characters::name.eq(excluded(characters::name)),
            characters::tagline.eq(excluded(characters::tagline)),
            characters::persona.eq(excluded(characters::persona)),
            characters::greeting.eq(excluded(characters::greeting)),
            characters::tags.eq(excluded(characters::tags)),
            characters::updated_at.eq(diesel::dsl::now),
        ));
    // A user's character is never overwritten by the catalogue.
    diesel::query_dsl::methods::FilterDsl::filter(stmt, characters::owner_id.is_null())
        .execute(conn)
        .await
}

/// A user's own characters, by name (`characters_owner_idx`).
pub async fn owned_by(conn: &mut AsyncPgConnection, owner: Uuid) -> QueryResult<Vec<Character>> {
    characters::table
        .filter(characters::owner_id.eq(owner))
        .order((characters::name, characters::id))
        .select(Character::as_select())
        .load(conn)
        .await
}

/// One of `owner`'s characters; `None` if absent or someone else's.
pub async fn get_owned(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: &str,
) -> QueryResult<Option<Character>> {
    characters::table
        .find(id)
        .filter(characters::owner_id.eq(owner))
        .select(Character::as_select())
        .first(conn)
        .await
        .optional()
}

/// The character if `user` may see it: a public one, or one of theirs.
pub async fn get_visible(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    id: &str,
) -> QueryResult<Option<Character>> {
    characters::table
        .find(id)
        .filter(
            characters::owner_id
                .is_null()
                .or(characters::owner_id.eq(user)),
        )
        .select(Character::as_select())
        .first(conn)
        .await
        .optional()
}

/// Creates `owner`'s character under `id`.
pub async fn insert_owned(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: &str,
    d: &CharacterDraft,
) -> QueryResult<Character> {
    diesel::insert_into(characters::table)
        .values((
            characters::id.eq(id),
            characters::owner_id.eq(owner),
            characters::name.eq(&d.name),
            characters::tagline.eq(&d.tagline),
            characters::persona.eq(&d.persona),
            characters::greeting.eq(&d.greeting),
            characters::tags.eq(&d.tags),
            characters::example_dialogue.eq(&d.example_dialogue),
            characters::card_extras.eq(&d.card_extras),
        ))
        .returning(Character::as_returning())
        .get_result(conn)
        .await
}

/// Applies an edit to one of `owner`'s characters; `None` if it is not theirs.
pub async fn update_owned(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: &str,
    changes: &CharacterChanges,
) -> QueryResult<Option<Character>> {
    if *changes == CharacterChanges::default() {
        return get_owned(conn, owner, id).await;
    }
    diesel::update(
        characters::table
            .find(id)
            .filter(characters::owner_id.eq(owner)),
    )
    .set((changes, characters::updated_at.eq(diesel::dsl::now)))
    .returning(Character::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Points one of `owner`'s characters at a new avatar (or none). Returns the character and
/// the key it pointed at before (whose object the caller deletes); `None` if not theirs.
pub async fn set_avatar(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: &str,
    key: Option<&str>,
) -> QueryResult<Option<(Character, Option<String>)>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        let old: Option<Option<String>> = characters::table
            .find(id)
            .filter(characters::owner_id.eq(owner))
            .select(characters::avatar_key)
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(old) = old else { return Ok(None) };
        let c = diesel::update(characters::table.find(id))
            .set((
                characters::avatar_key.eq(key),
                characters::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Character::as_returning())
            .get_result(conn)
            .await?;
        Ok(Some((c, old)))
    })
    .await
}

/// What deleting a character left in storage for the caller to delete.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeletedCharacter {
    pub avatar_key: Option<String>,
    /// The photos the character had sent (their rows went with the match).
    pub photo_keys: Vec<String>,
}

/// Deletes one of `owner`'s characters with its match (conversation, photos, memories, jobs
/// go with it, by cascade) in one transaction; `None` if it is not theirs.
pub async fn delete_owned(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: &str,
) -> QueryResult<Option<DeletedCharacter>> {
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        {
            let found: Option<Option<String>> = characters::table
                .find(id)
                .filter(characters::owner_id.eq(owner))
                .select(characters::avatar_key)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some(avatar_key) = found else {
                return Ok(None);
            };
            let photo_keys: Vec<String> = received_photos::table
                .filter(received_photos::user_id.eq(owner))
                .filter(received_photos::character_id.eq(id))
                .select(received_photos::storage_key)
                .load(conn)
                .await?;
            // Only the owner can have matched it; `character_id` alone covers anyone else too.
            diesel::delete(matches::table.filter(matches::character_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(characters::table.find(id))
                .execute(conn)
                .await?;
            Ok(Some(DeletedCharacter {
                avatar_key,
                photo_keys,
            }))
        }
    })
    .await
}

/// Why a character could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateCharacterError {
    #[error("at most {0} characters of one's own")]
    TooMany(i64),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Creates `owner`'s character under `id` unless they have `max` already: counted and
/// inserted under a per-owner lock, so concurrent creations cannot pass the bound.
pub async fn create_owned(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: &str,
    d: &CharacterDraft,
    max: i64,
) -> Result<Character, CreateCharacterError> {
    conn.transaction::<_, CreateCharacterError, _>(async |conn| {
        diesel::sql_query(
            "/* characters::create_owned */ SELECT pg_advisory_xact_lock(hashtextextended('characters:' || $1::text, 0))",
        )
        .bind::<diesel::sql_types::Uuid, _>(owner)
        .execute(conn)
        .await?;
        let n: i64 = characters::table
            .filter(characters::owner_id.eq(owner))
            .count()
            .get_result(conn)
            .await?;
        if n >= max {
            return Err(CreateCharacterError::TooMany(max));
        }
        Ok(insert_owned(conn, owner, id, d).await?)
    })
    .await
}
