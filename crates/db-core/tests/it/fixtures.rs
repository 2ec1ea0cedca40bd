use chrono::{DateTime, Duration, Utc};
use db_core::AsyncPgConnection;
use db_core::models::{NewMessage, NewUser, SecretString, Sender};
use db_core::queries::{matches, messages, users};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

pub async fn user(conn: &mut AsyncPgConnection, email: &str) -> Uuid {
    let new = NewUser {
        email: email.to_owned(),
        password_hash: SecretString::new("$argon2id$test"),
        display_name: email.split('@').next().unwrap().to_owned(),
    };
    users::create(conn, &new).await.unwrap().id
}

/// The demo catalogue, then a user matched with `characters`.
pub async fn matched_user(conn: &mut AsyncPgConnection, email: &str, characters: &[&str]) -> Uuid {
    db_core::queries::characters::upsert(conn, &db_core::seed::demo_characters().unwrap())
        .await
        .unwrap();
    let id = user(conn, email).await;
    for c in characters {
        matches::create(conn, id, c).await.unwrap();
    }
    id
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_760_000_000, 0).unwrap() + Duration::minutes(minutes)
}

/// `n` messages alternating user/character, one minute apart, oldest first.
pub async fn conversation(conn: &mut AsyncPgConnection, user: Uuid, character: &str, n: usize) {
    let rows: Vec<NewMessage> = (0..n)
        .map(|i| {
            let sender = if i % 2 == 0 {
                Sender::User
            } else {
                Sender::Character
            };
            let mut m = NewMessage::new(user, character, sender, format!("message {i}"));
            m.created_at = at(i as i64);
            m
        })
        .collect();
    messages::insert_many(conn, &rows).await.unwrap();
}

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The first column of the first row, as text.
pub async fn scalar(conn: &mut AsyncPgConnection, sql: &str) -> String {
    diesel::sql_query(format!("SELECT ({sql})::text AS v"))
        .get_result::<One>(conn)
        .await
        .unwrap()
        .v
}
