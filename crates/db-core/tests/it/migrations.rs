use db_core::migrate::{self, Outcome};
use db_test::TestDb;

use crate::fixtures::scalar;

/// Everything a migration can change, one sorted line each.
async fn schema(db: &TestDb) -> String {
    let mut conn = db.conn().await.unwrap();
    scalar(
        &mut conn,
        "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM ( \
           SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                  || ' ' || coalesce(column_default, '') || coalesce(generation_expression, '') \
           FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' \
           UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes \
             WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations' \
           UNION ALL SELECT 'con ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '__diesel_schema_migrations' \
           UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace AND typtype = 'e' \
           UNION ALL SELECT 'ext ' || extname FROM pg_extension) s(x)",
    )
    .await
}

fn migration_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn migrate_applies_everything_once_then_nothing() {
    let db = TestDb::empty().await.unwrap();
    let first = migrate::run_pending(db.url()).await.unwrap();
    assert_eq!(first.applied(), migration_count(), "{:?}", first.migrations);
    assert_eq!((first.skipped(), first.failed()), (0, 0));
    let second = migrate::run_pending(db.url()).await.unwrap();
    assert_eq!(second.applied(), 0);
    assert_eq!(second.skipped(), migration_count());
    assert!(
        second
            .migrations
            .iter()
            .all(|(_, o)| *o == Outcome::Skipped)
    );
}

#[tokio::test]
async fn every_down_reverses_its_up() {
    let db = TestDb::empty().await.unwrap();
    // Walk up one migration at a time, remembering the schema before each.
    let mut before = vec![schema(&db).await];
    let mut names = Vec::new();
    while let Some(name) = migrate::run_next(db.url()).await.unwrap() {
        names.push(name);
        before.push(schema(&db).await);
    }
    assert_eq!(names.len(), migration_count());
    let full = before.last().unwrap().clone();
    assert!(full.contains("chat_messages_conversation_idx"), "{full}");
    // Walk down: each down.sql must restore exactly the schema its up.sql started from.
    for (i, name) in names.iter().enumerate().rev() {
        migrate::revert_last(db.url()).await.unwrap();
        assert_eq!(
            schema(&db).await,
            before[i],
            "down.sql of {name} does not reverse its up.sql"
        );
    }
    // And up again.
    let again = migrate::run_pending(db.url()).await.unwrap();
    assert!(again.is_success());
    assert_eq!(schema(&db).await, full);
}

#[tokio::test]
async fn a_failing_migration_is_reported_and_stops_the_run() {
    let db = TestDb::new().await.unwrap();
    // Make the next run's first migration collide: drop the record of it, keep its tables.
    let mut conn = db.conn().await.unwrap();
    db_core::pool::batch_execute(
        &mut conn,
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261127000001'",
    )
    .await
    .unwrap();
    let report = migrate::run_pending(db.url()).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(report.failed(), 1);
    assert!(
        matches!(report.migrations[0].1, Outcome::Failed(ref e) if e.contains("already exists")),
        "{:?}",
        report.migrations[0]
    );
    assert_eq!(report.skipped(), migration_count() - 1);
}

/// No index is a prefix of another on the same table (same method, same predicate): such a
/// pair costs every write and serves no read the longer one does not.
#[tokio::test]
async fn the_search_pending_lists_are_merged_on_demand() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    // Whatever the template left queued first.
    db_core::maintenance::merge_pending_lists(&mut conn)
        .await
        .unwrap();
    let user = crate::fixtures::matched_user(&mut conn, "gin@example.com", &["sophia"]).await;
    crate::fixtures::conversation(&mut conn, user, "sophia", 200).await;
    // The inserts queued their words; merging takes them into the index, and nothing is left.
    let merged = db_core::maintenance::merge_pending_lists(&mut conn)
        .await
        .unwrap();
    assert!(merged > 0, "{merged} pages merged");
    assert_eq!(
        db_core::maintenance::merge_pending_lists(&mut conn)
            .await
            .unwrap(),
        0
    );
    // The messages are found through the merged index.
    assert_eq!(
        scalar(
            &mut conn,
            &format!(
                "SELECT count(*) FROM chat_messages WHERE user_id = '{user}' \
                 AND search_vector @@ plainto_tsquery('french', 'message')"
            )
        )
        .await,
        "200"
    );
}

#[tokio::test]
async fn no_index_duplicates_another() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let report = db_core::maintenance::report(&mut conn).await.unwrap();
    assert!(
        report.overlapping.is_empty(),
        "redundant indexes: {:?}",
        report.overlapping
    );
    // The check itself can fail: a prefix of the conversation index is caught.
    db_core::pool::batch_execute(
        &mut conn,
        "CREATE INDEX redundant ON chat_messages (user_id, character_id)",
    )
    .await
    .unwrap();
    let report = db_core::maintenance::report(&mut conn).await.unwrap();
    assert_eq!(report.overlapping.len(), 1, "{:?}", report.overlapping);
    assert_eq!(report.overlapping[0].index, "redundant");
    assert_eq!(
        report.overlapping[0].covered_by,
        "chat_messages_conversation_idx"
    );
}
