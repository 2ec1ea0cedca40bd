use db_core::explain::{self, Sample};
use db_test::TestDb;

/// Every hot query, on a 300,000-message dataset, uses the index built for it and reads no
/// large table sequentially. Times are printed, not asserted.
#[tokio::test]
async fn hot_queries_use_their_indexes_on_a_seeded_dataset() {
    let db = TestDb::seeded().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let sample = Sample::from_data(&mut conn).await.unwrap().unwrap();
    let plans = explain::explain_all(&mut conn, &sample).await.unwrap();
    assert!(plans.len() >= 12, "{}", plans.len());
    let mut failures = Vec::new();
    for p in &plans {
        println!(
            "{:<40} {:>8.3} ms  {}",
            p.name, p.execution_ms, p.expected_index
        );
        if !p.is_ok() {
            failures.push(format!(
                "── {} (expected {}) ──\n{}",
                p.name,
                p.expected_index,
                p.text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let latest = plans
        .iter()
        .find(|p| p.name.starts_with("messages.latest"))
        .unwrap();
    assert!(
        latest.text().contains("Index Cond: ((user_id = "),
        "{}",
        latest.text()
    );
    let unread = plans
        .iter()
        .find(|p| p.name == "messages.unread_count")
        .unwrap();
    assert!(
        unread.text().contains("chat_messages_unread_idx"),
        "{}",
        unread.text()
    );
}

/// The check itself must be able to fail: with the index gone the planner scans the table.
#[tokio::test]
async fn the_check_catches_a_sequential_scan() {
    let db = TestDb::seeded().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    db_core::pool::batch_execute(
        &mut conn,
        "DROP INDEX received_photos_gallery_idx; ANALYZE received_photos",
    )
    .await
    .unwrap();
    let sample = Sample::from_data(&mut conn).await.unwrap().unwrap();
    let plans = explain::explain_all(&mut conn, &sample).await.unwrap();
    let photos = plans
        .iter()
        .find(|p| p.name == "photos.latest (20)")
        .unwrap();
    assert!(!photos.is_ok(), "{}", photos.text());
    assert!(!photos.uses_index("received_photos_gallery_idx"));
}
