//! The character catalogue.

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::models::Character;
use crate::schema::characters;

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Character>> {
    characters::table
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
    diesel::insert_into(characters::table)
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
        ))
        .execute(conn)
        .await
}
