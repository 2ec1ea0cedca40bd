//! Row models and the value types stored in them.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Binary, Text};
use serde::{Deserialize, Serialize};
use std::io::Write;
use uuid::Uuid;

use crate::schema::{
    characters, chat_messages, matches, memories, nudges, photo_jobs, received_photos,
    refresh_sessions, sql_types, users,
};

/// The format of a character id (the `characters.id` CHECK constraint): lowercase letters,
/// digits and `-`, not starting with `-`, at most 63 characters.
pub fn is_character_id(id: &str) -> bool {
    let b = id.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len()) && ok(&b[0]) && b[1..].iter().all(|c| ok(c) || *c == b'-')
}

/// The longest message PostgreSQL stores (the `chat_messages.content` constraint).
pub const MAX_MESSAGE_CHARS: usize = 8000;

/// Who wrote a chat message.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    AsExpression,
    FromSqlRow,
)]
#[diesel(sql_type = sql_types::MessageSender)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    User,
    Character,
    System,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Character => "character",
            Sender::System => "system",
        }
    }
}

impl ToSql<sql_types::MessageSender, Pg> for Sender {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::MessageSender, Pg> for Sender {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        match bytes.as_bytes() {
            b"user" => Ok(Sender::User),
            b"character" => Ok(Sender::Character),
            b"system" => Ok(Sender::System),
            other => Err(format!(
                "unknown message_sender {:?}",
                String::from_utf8_lossy(other)
            )
            .into()),
        }
    }
}

/// An enum stored as text (the column's CHECK constraint lists the same words).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
            AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let text = std::str::from_utf8(bytes.as_bytes())?;
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($name), " {:?}"), other).into()),
                }
            }
        }
    };
}

text_enum! {
    /// Where a character's reply stands.
    GenerationStatus {
        /// Being written (under a lease).
        Running => "running",
        Done => "done",
        Failed => "failed",
        /// Retired: given up, replaced by a swipe, or taken over after its writer died.
        Superseded => "superseded",
    }
}

text_enum! {
    /// Where a message a character writes first stands.
    NudgeStatus {
        Queued => "queued",
        Running => "running",
        Done => "done",
        /// Not sent: the user wrote meanwhile, or turned it off.
        Cancelled => "cancelled",
        Failed => "failed",
    }
}

text_enum! {
    /// Where a photo job stands.
    JobStatus {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Failed => "failed",
    }
}

/// A text secret (a password hash). Its `Debug` never shows the value, and diesel prints bind
/// parameters with `Debug`, so slow-query logs cannot leak it.
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ToSql<Text, Pg> for SecretString {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.0.as_str(), out)
    }
}

impl FromSql<Text, Pg> for SecretString {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <String as FromSql<Text, Pg>>::from_sql(bytes).map(Self)
    }
}

/// A binary secret (a token hash), redacted like [`SecretString`].
#[derive(Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Binary)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl ToSql<Binary, Pg> for SecretBytes {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <[u8] as ToSql<Binary, Pg>>::to_sql(self.0.as_slice(), out)
    }
}

impl FromSql<Binary, Pg> for SecretBytes {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Vec<u8> as FromSql<Binary, Pg>>::from_sql(bytes).map(Self)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = users, check_for_backend(Pg))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: SecretString,
    pub display_name: String,
    pub xp: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub email: String,
    pub password_hash: SecretString,
    pub display_name: String,
}

#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    Queryable,
    Selectable,
    QueryableByName,
    Insertable,
)]
#[diesel(table_name = characters, check_for_backend(Pg))]
pub struct Character {
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    pub name: String,
    pub tagline: String,
    pub persona: String,
    pub greeting: String,
    pub tags: Vec<String>,
    #[serde(skip, default = "Utc::now")]
    pub created_at: DateTime<Utc>,
    #[serde(skip, default = "Utc::now")]
    pub updated_at: DateTime<Utc>,
    /// The user a private character belongs to; `None`: the public catalogue.
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// Example exchanges that show how the character speaks (a card's `mes_example`).
    #[serde(default)]
    pub example_dialogue: String,
    /// The avatar's key in media storage.
    #[serde(default)]
    pub avatar_key: Option<String>,
    /// What an imported Character Card carried that has no column here, kept for export.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub card_extras: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Character {
    /// What the model is told about who it plays: the persona, then (from an imported card)
    /// the personality and the scenario, then the example dialogue.
    pub fn prompt_persona(&self) -> String {
        let mut out = self.persona.clone();
        let mut add = |label: &str, text: &str| {
            let text = text.trim();
            if !text.is_empty() {
                out.push_str("\n\n");
                out.push_str(label);
                out.push_str(text);
            }
        };
        for (label, field) in [("Personality: ", "personality"), ("Scenario: ", "scenario")] {
            if let Some(text) = self.card_extras.get(field).and_then(|v| v.as_str()) {
                add(label, text);
            }
        }
        add("Example dialogue:\n", &self.example_dialogue);
        out
    }
}

/// What a user writes to create a character of their own, or to replace it whole.
#[derive(Debug, Clone, PartialEq)]
pub struct CharacterDraft {
    pub name: String,
    pub tagline: String,
    pub persona: String,
    pub greeting: String,
    pub tags: Vec<String>,
    pub example_dialogue: String,
    pub card_extras: serde_json::Value,
}

/// An edit of one's own character: the fields given change, the others stay.
#[derive(Debug, Clone, Default, PartialEq, AsChangeset)]
#[diesel(table_name = characters)]
pub struct CharacterChanges {
    pub name: Option<String>,
    pub tagline: Option<String>,
    pub persona: Option<String>,
    pub greeting: Option<String>,
    pub tags: Option<Vec<String>>,
    pub example_dialogue: Option<String>,
}

#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    Queryable,
    Selectable,
    QueryableByName,
)]
#[diesel(table_name = matches, check_for_backend(Pg))]
pub struct Match {
    pub user_id: Uuid,
    pub character_id: String,
    pub affection: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    Queryable,
    Selectable,
    QueryableByName,
)]
#[diesel(table_name = chat_messages, check_for_backend(Pg))]
pub struct Message {
    pub id: i64,
    pub user_id: Uuid,
    pub character_id: String,
    pub sender: Sender,
    pub content: String,
    pub is_read: bool,
    pub client_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The photo this message carries (a photo the character sent).
    #[serde(default)]
    pub photo_id: Option<i64>,
}

/// A message to store. `None` is stored as NULL (the columns' default) rather than written as
/// `DEFAULT`: a statement with `DEFAULT` in it changes with the values, so diesel would not
/// keep it prepared, and every send would have PostgreSQL parse and plan it again.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = chat_messages, treat_none_as_default_value = false)]
pub struct NewMessage {
    pub user_id: Uuid,
    pub character_id: String,
    pub sender: Sender,
    pub content: String,
    pub is_read: bool,
    pub client_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub photo_id: Option<i64>,
}

impl NewMessage {
    /// A message as it is usually stored: the user's own messages are read, what the
    /// character or the system sends is unread until the user opens the conversation.
    pub fn new(
        user_id: Uuid,
        character_id: impl Into<String>,
        sender: Sender,
        content: impl Into<String>,
    ) -> Self {
        Self {
            user_id,
            character_id: character_id.into(),
            sender,
            content: content.into(),
            is_read: sender == Sender::User,
            client_id: None,
            created_at: Utc::now(),
            photo_id: None,
        }
    }

    pub fn with_client_id(mut self, client_id: Uuid) -> Self {
        self.client_id = Some(client_id);
        self
    }
}

#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    Queryable,
    Selectable,
    QueryableByName,
)]
#[diesel(table_name = received_photos, check_for_backend(Pg))]
pub struct Photo {
    pub id: i64,
    pub user_id: Uuid,
    pub character_id: String,
    pub storage_key: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub prompt: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// A photo generation job (see `queries::photo_jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = photo_jobs, check_for_backend(Pg))]
pub struct PhotoJob {
    pub id: Uuid,
    pub user_id: Uuid,
    pub character_id: String,
    pub prompt: Option<String>,
    /// `queued`, `running`, `done` or `failed`.
    pub status: JobStatus,
    pub attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub photo_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = received_photos)]
pub struct NewPhoto {
    pub user_id: Uuid,
    pub character_id: String,
    pub storage_key: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub prompt: Option<String>,
}

#[derive(
    utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Queryable, Selectable, QueryableByName,
)]
#[diesel(table_name = memories, check_for_backend(Pg))]
pub struct Memory {
    pub id: i64,
    pub user_id: Uuid,
    pub character_id: String,
    pub content: String,
    pub source_message_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = memories)]
pub struct NewMemory {
    pub user_id: Uuid,
    pub character_id: String,
    pub content: String,
    pub source_message_id: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_sessions, check_for_backend(Pg))]
pub struct RefreshSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: SecretBytes,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A user as their profile shows them (no secrets: this is what is cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub xp: i64,
    pub created_at: DateTime<Utc>,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            xp: u.xp,
            created_at: u.created_at,
        }
    }
}

pub use crate::queries::generations::Generation;
pub use crate::queries::matches::MatchSummary;
pub use crate::queries::memories::MemoryHit;
pub use crate::queries::messages::MessageHit;
pub use crate::queries::users::{LeaderboardEntry, Rank};

/// A message a character writes first after a silence (see `queries::nudges`).
#[derive(Debug, Clone, PartialEq, Serialize, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = nudges, check_for_backend(Pg))]
pub struct Nudge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub character_id: String,
    /// The message whose silence this answers.
    pub after_message_id: i64,
    pub status: NudgeStatus,
    pub attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub message_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}
