//! What PostgreSQL holds, read with the suite's own SQL (not the code under test), and what
//! each chat replica answers compared with it.

use std::collections::{HashMap, HashSet};

use diesel::sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::load::Sent;
use super::{Rig, User};

pub(crate) async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = db_core::pool::connect_unpooled(admin_url, "chaos").await?;
    sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct IdClient {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    client_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    content: String,
}

/// Acknowledged messages missing from PostgreSQL, and messages stored more than once.
#[derive(Debug, Default, Clone, Copy)]
pub struct Writes {
    pub attempted: u64,
    pub acked: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Stored although the client never saw an acknowledgement (harmless: the client would
    /// have sent it again with the same id).
    pub stored_unacked: u64,
}

pub(crate) async fn writes(conn: &mut AsyncPgConnection, sent: &[Sent]) -> anyhow::Result<Writes> {
    let contents: Vec<String> = sent.iter().map(|s| s.content.clone()).collect();
    let rows: Vec<IdClient> =
        sql_query("SELECT id, client_id, content FROM chat_messages WHERE content = ANY($1)")
            .bind::<Array<Text>, _>(&contents)
            .load(conn)
            .await?;
    let mut stored: HashMap<&str, Vec<&IdClient>> = HashMap::new();
    for r in &rows {
        stored.entry(r.content.as_str()).or_default().push(r);
    }
    let mut w = Writes {
        attempted: sent.len() as u64,
        ..Writes::default()
    };
    for s in sent {
        let found = stored
            .get(s.content.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if found.len() > 1 {
            w.duplicated += found.len() as u64 - 1;
        }
        match s.acked {
            Some(id) => {
                w.acked += 1;
                if !found
                    .iter()
                    .any(|r| r.id == id && r.client_id == Some(s.client_id))
                {
                    w.lost += 1;
                }
            }
            None if !found.is_empty() => w.stored_unacked += 1,
            None => {}
        }
    }
    Ok(w)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Affection {
    #[diesel(sql_type = BigInt)]
    affection: i64,
}

/// One disagreement between a replica's answer and PostgreSQL.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub replica: &'static str,
    pub user: usize,
    pub what: String,
}

/// Every user's conversation window and match list asked of each chat replica directly,
/// compared with PostgreSQL.
pub(crate) async fn replica_mismatches(rig: &Rig) -> anyhow::Result<Vec<Mismatch>> {
    let mut conn = rig.stack.conn().await;
    let mut out = Vec::new();
    for (i, u) in rig.users.iter().enumerate() {
        let truth_ids: Vec<i64> = sql_query(
            "SELECT id FROM chat_messages WHERE user_id = $1 AND character_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT 50",
        )
        .bind::<SqlUuid, _>(u.id)
        .bind::<Text, _>(&u.character)
        .load::<Id>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
        let newest = <[i64]>::first(&truth_ids).copied();
        let affection = sql_query(
            "SELECT affection::int8 AS affection FROM matches WHERE user_id = $1 AND character_id = $2",
        )
        .bind::<SqlUuid, _>(u.id)
        .bind::<Text, _>(&u.character)
        .get_result::<Affection>(&mut conn)
        .await?
        .affection;
        for replica in &rig.stack.chat {
            let window = get(rig, &replica.url(), u, &window_path(u)).await;
            let ids: Vec<i64> = window["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["id"].as_i64()).collect())
                .unwrap_or_default();
            if ids != truth_ids {
                out.push(Mismatch {
                    replica: replica.name,
                    user: i,
                    what: format!(
                        "window {:?}… ≠ PostgreSQL {:?}…",
                        &ids[..ids.len().min(3)],
                        &truth_ids[..truth_ids.len().min(3)]
                    ),
                });
            }
            let list = get(rig, &replica.url(), u, "/api/v1/matches").await;
            let m = list.as_array().and_then(|a| {
                a.iter()
                    .find(|m| m["character_id"] == u.character.as_str())
                    .cloned()
            });
            let (last, aff) = m
                .map(|m| (m["last_message_id"].as_i64(), m["affection"].as_i64()))
                .unwrap_or((None, None));
            if last != newest || aff != Some(affection) {
                out.push(Mismatch {
                    replica: replica.name,
                    user: i,
                    what: format!(
                        "match list: last {last:?}, affection {aff:?} ≠ PostgreSQL {newest:?}, {affection}"
                    ),
                });
            }
        }
    }
    Ok(out)
}

fn window_path(u: &User) -> String {
    format!("/api/v1/conversations/{}/messages?limit=50", u.character)
}

/// A chat replica's answer, asked directly (services serve the same paths as the gateway).
async fn get(rig: &Rig, base: &str, u: &User, path: &str) -> Value {
    match rig
        .stack
        .http
        .get(format!("{base}{path}"))
        .bearer_auth(&u.token)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

#[derive(QueryableByName)]
struct Twice {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Replies written more than once for the same message (a swipe aside), and the user messages
/// of `asked` that never got one.
pub(crate) async fn replies(
    conn: &mut AsyncPgConnection,
    users: &[Uuid],
    asked: &[i64],
) -> anyhow::Result<(u64, u64)> {
    let twice: Vec<Twice> = sql_query(
        "SELECT count(*) AS n FROM generations \
         WHERE user_id = ANY($1) AND status = 'done' AND replaces_message_id IS NULL \
         GROUP BY user_message_id HAVING count(*) > 1",
    )
    .bind::<Array<SqlUuid>, _>(users)
    .load(conn)
    .await?;
    let answered: HashSet<i64> = sql_query(
        "SELECT g.user_message_id AS id FROM generations g \
         JOIN chat_messages m ON m.id = g.reply_message_id \
         WHERE g.user_message_id = ANY($1) AND g.status = 'done'",
    )
    .bind::<Array<BigInt>, _>(asked)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    let duplicated = twice.iter().map(|t| (t.n - 1) as u64).sum();
    let unanswered = asked.iter().filter(|id| !answered.contains(id)).count() as u64;
    Ok((duplicated, unanswered))
}

#[derive(QueryableByName)]
struct PromptCount {
    #[diesel(sql_type = Nullable<Text>)]
    prompt: Option<String>,
    #[diesel(sql_type = BigInt)]
    photos: i64,
    #[diesel(sql_type = BigInt)]
    messages: i64,
}

/// For each prompt: photos stored and photo messages delivered (exactly once: 1 and 1).
pub(crate) async fn photos_by_prompt(
    conn: &mut AsyncPgConnection,
    prompts: &[String],
) -> anyhow::Result<HashMap<String, (i64, i64)>> {
    let rows: Vec<PromptCount> = sql_query(
        "SELECT p.prompt, count(DISTINCT p.id) AS photos, count(m.id) AS messages \
         FROM received_photos p LEFT JOIN chat_messages m ON m.photo_id = p.id \
         WHERE p.prompt = ANY($1) GROUP BY p.prompt",
    )
    .bind::<Array<Text>, _>(prompts)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.prompt?, (r.photos, r.messages))))
        .collect())
}
