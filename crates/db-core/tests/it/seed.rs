use db_core::models::SecretString;
use db_core::seed::{self, SeedConfig, SeedError};
use db_test::TestDb;

use crate::fixtures::scalar;

fn tiny() -> SeedConfig {
    SeedConfig {
        users: 7,
        characters: 12,
        matches_per_user: 4,
        messages_per_match: 9,
        unread_tail: 4,
        photos_per_match: 2,
        memories_per_match: 1,
        users_per_chunk: 3,
        ..SeedConfig::default()
    }
}

const DIGEST: &str = "SELECT md5(string_agg(u.email || m.character_id || m.sender || m.content || m.is_read || m.created_at, '|' \
                      ORDER BY u.email, m.character_id, m.created_at)) \
                      FROM chat_messages m JOIN users u ON u.id = m.user_id";

#[tokio::test]
async fn seeding_gives_the_asked_counts_and_the_same_rows_every_time() {
    let hash = SecretString::new("$argon2id$test");
    let (a, b) = (TestDb::new().await.unwrap(), TestDb::new().await.unwrap());
    let cfg = tiny();
    let counts = seed::seed(a.url(), &cfg, &hash, false, &|_| {})
        .await
        .unwrap()
        .counts;
    assert_eq!(
        (
            counts.users,
            counts.characters,
            counts.matches,
            counts.messages,
            counts.photos,
            counts.memories
        ),
        (7, 12, 28, 252, 56, 28)
    );
    assert_eq!(
        counts.unread,
        28 * 2,
        "the character's messages among the last 4 of each conversation"
    );
    let other = SeedConfig {
        parallelism: 1,
        users_per_chunk: 7,
        ..cfg.clone()
    };
    seed::seed(b.url(), &other, &hash, false, &|_| {})
        .await
        .unwrap();
    let (mut ca, mut cb) = (a.conn().await.unwrap(), b.conn().await.unwrap());
    assert_eq!(
        scalar(&mut ca, DIGEST).await,
        scalar(&mut cb, DIGEST).await,
        "chunking and parallelism change nothing"
    );
    assert_eq!(
        scalar(
            &mut ca,
            "SELECT count(DISTINCT (user_id, character_id)) FROM matches"
        )
        .await,
        "28",
        "each user's matches are distinct characters"
    );
    assert_eq!(
        scalar(
            &mut ca,
            "SELECT count(*) FROM users WHERE email = 'user7@example.com'"
        )
        .await,
        "1"
    );

    // A seeded database is not seeded again by accident...
    assert!(matches!(
        seed::seed(a.url(), &cfg, &hash, false, &|_| {}).await,
        Err(SeedError::NotEmpty(7))
    ));
    // ...but can be replaced on purpose, with identical rows.
    seed::seed(a.url(), &cfg, &hash, true, &|_| {})
        .await
        .unwrap();
    assert_eq!(scalar(&mut ca, DIGEST).await, scalar(&mut cb, DIGEST).await);
}

#[tokio::test]
async fn the_demo_load_is_idempotent() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let hash = SecretString::new("$argon2id$test");
    let first = seed::load_demo(&mut conn, &hash).await.unwrap();
    assert!(first.user_created);
    assert!(first.characters >= 8);
    let second = seed::load_demo(&mut conn, &hash).await.unwrap();
    assert!(!second.user_created);
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM characters").await,
        first.characters.to_string()
    );
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM chat_messages").await,
        "1",
        "one greeting, not two"
    );
    assert_eq!(
        scalar(&mut conn, "SELECT sender FROM chat_messages").await,
        "character",
        "the character speaks first"
    );
}
