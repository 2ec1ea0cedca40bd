//! `schema.rs` is kept by hand: this test compares it with the migrated database, column by
//! column (name, type, nullability), and fails on any drift either way.

use std::collections::{BTreeMap, BTreeSet};

use db_test::TestDb;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

/// Columns the database has and diesel does not model, on purpose (each with its reason in
/// `schema.rs`'s header).
const UNMODELLED: &[(&str, &str)] = &[
    ("chat_messages", "search_vector"),
    ("memories", "search_vector"),
];

/// Tables outside the schema: diesel's own bookkeeping, and the write-behind's record of
/// flushes (kept until its contract migration; nothing reads it any more).
const UNMODELLED_TABLES: &[&str] = &["__diesel_schema_migrations", "affection_flushes"];

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    udt_name: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

/// `table -> column -> (type, nullable)` as `schema.rs` declares it.
fn declared() -> BTreeMap<String, BTreeMap<String, (String, bool)>> {
    let text = include_str!("../../src/schema.rs");
    let mut tables = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_suffix('{').and_then(|l| l.split_once(" (")) {
            current = Some(name.0.trim().to_owned());
            continue;
        }
        if line == "}" {
            current = None;
            continue;
        }
        let (Some(table), Some((column, ty))) = (&current, line.split_once(" -> ")) else {
            continue;
        };
        let ty = ty.trim_end_matches(',');
        let (ty, nullable) = match ty.strip_prefix("Nullable<") {
            Some(inner) => (inner.trim_end_matches('>'), true),
            None => (ty, false),
        };
        let pg = match ty {
            "Uuid" => "uuid",
            "Text" => "text",
            "Int8" => "int8",
            "Int4" => "int4",
            "Bool" => "bool",
            "Timestamptz" => "timestamptz",
            "Jsonb" => "jsonb",
            "Bytea" => "bytea",
            "Array<Text>" => "_text",
            "MessageSender" => "message_sender",
            other => panic!("schema.rs: map the diesel type {other} here"),
        };
        tables
            .entry(table.clone())
            .or_insert_with(BTreeMap::new)
            .insert(column.trim().to_owned(), (pg.to_owned(), nullable));
    }
    tables
}

#[tokio::test]
async fn schema_rs_matches_the_migrated_database() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, udt_name::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut actual: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
    for c in columns {
        if UNMODELLED_TABLES.contains(&c.table_name.as_str())
            || UNMODELLED.contains(&(c.table_name.as_str(), c.column_name.as_str()))
        {
            continue;
        }
        actual
            .entry(c.table_name)
            .or_default()
            .insert(c.column_name, (c.udt_name, c.is_nullable == "YES"));
    }
    let declared = declared();
    let tables = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(tables(&declared), tables(&actual), "tables");
    for (table, columns) in &declared {
        assert_eq!(columns, &actual[table], "columns of {table}");
    }
}
