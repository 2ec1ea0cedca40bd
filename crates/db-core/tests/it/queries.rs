use chrono::Utc;
use db_core::instrumentation::count_queries;
use db_core::models::{NewMemory, NewMessage, NewPhoto, RefreshSession, SecretBytes, Sender};
use db_core::queries::messages::{self, BULK_INSERT_BATCH, Inserted, SendError};
use db_core::queries::{characters, matches, memories, photos, sessions, users};
use db_test::TestDb;
use uuid::Uuid;

use crate::fixtures::{at, conversation, matched_user, scalar, user};

#[tokio::test]
async fn latest_messages_page_by_keyset_newest_first_with_ties() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia", "hugo"]).await;
    conversation(&mut conn, u, "sophia", 230).await;
    // Twenty messages sharing one timestamp: the id breaks the tie, none is skipped or repeated.
    let same: Vec<NewMessage> = (0..20)
        .map(|i| {
            let mut m = NewMessage::new(u, "sophia", Sender::Character, format!("tie {i}"));
            m.created_at = at(100);
            m
        })
        .collect();
    messages::insert_many(&mut conn, &same).await.unwrap();
    conversation(&mut conn, u, "hugo", 5).await;

    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = Vec::new();
    loop {
        let page = messages::latest(&mut conn, u, "sophia", before, 100)
            .await
            .unwrap();
        pages.push(page.items.len());
        seen.extend(page.items.iter().map(|m| (m.created_at, m.id)));
        assert!(
            page.items
                .iter()
                .all(|m| m.character_id == "sophia" && m.user_id == u)
        );
        match page.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, vec![100, 100, 50]);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(
        seen, sorted,
        "pages must be strictly newest first, without repeats"
    );
    assert_eq!(seen.len(), 250);
    // The cursor survives its text form.
    let c = messages::latest(&mut conn, u, "sophia", None, 10)
        .await
        .unwrap()
        .next
        .unwrap();
    assert_eq!(
        c.to_string()
            .parse::<db_core::pagination::Cursor>()
            .unwrap(),
        c
    );
}

#[tokio::test]
async fn nobody_reads_another_users_conversation() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    let b = user(&mut conn, "b@example.com").await;
    conversation(&mut conn, a, "sophia", 10).await;
    assert!(
        messages::latest(&mut conn, b, "sophia", None, 50)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        matches::list_with_last_message(&mut conn, b)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        messages::unread_count(&mut conn, b, "sophia")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        messages::mark_read(&mut conn, b, "sophia").await.unwrap(),
        0
    );
    assert_eq!(
        messages::unread_count(&mut conn, a, "sophia")
            .await
            .unwrap(),
        5
    );
    let any = messages::latest(&mut conn, a, "sophia", None, 1)
        .await
        .unwrap()
        .items[0]
        .id;
    assert!(messages::get(&mut conn, b, any).await.unwrap().is_none());
    assert!(messages::get(&mut conn, a, any).await.unwrap().is_some());
}

#[tokio::test]
async fn matches_list_has_last_message_and_unread_count_in_one_statement() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia", "hugo", "amelie"]).await;
    conversation(&mut conn, u, "sophia", 7).await; // ends at minute 6 with a user message
    let mut late = NewMessage::new(u, "hugo", Sender::Character, "tu es là ?");
    late.created_at = at(60);
    messages::insert_many(&mut conn, &[late]).await.unwrap();

    let (list, queries) = count_queries(matches::list_with_last_message(&mut conn, u)).await;
    let list = list.unwrap();
    assert_eq!(queries, 1, "one statement, no N+1");
    let order: Vec<&str> = list.iter().map(|m| m.character_id.as_str()).collect();
    assert_eq!(
        order,
        ["hugo", "sophia", "amelie"],
        "most recently active first, silent ones last"
    );
    assert_eq!(list[0].last_message_content.as_deref(), Some("tu es là ?"));
    assert_eq!(list[0].last_message_sender, Some(Sender::Character));
    assert_eq!(list[0].unread_count, 1);
    assert_eq!(list[0].character_name, "Hugo");
    assert_eq!(list[1].last_message_content.as_deref(), Some("message 6"));
    assert_eq!(
        list[1].unread_count, 3,
        "messages 1, 3 and 5 came from the character"
    );
    assert_eq!((list[2].last_message_id, list[2].unread_count), (None, 0));
}

#[tokio::test]
async fn mark_read_resets_the_unread_count() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia", "hugo"]).await;
    conversation(&mut conn, u, "sophia", 10).await;
    conversation(&mut conn, u, "hugo", 4).await;
    assert_eq!(
        messages::unread_count(&mut conn, u, "sophia")
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        messages::mark_read(&mut conn, u, "sophia").await.unwrap(),
        5
    );
    assert_eq!(
        messages::unread_count(&mut conn, u, "sophia")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        messages::mark_read(&mut conn, u, "sophia").await.unwrap(),
        0
    );
    assert_eq!(
        messages::unread_count(&mut conn, u, "hugo").await.unwrap(),
        2,
        "other conversations untouched"
    );
}

#[tokio::test]
async fn a_client_id_is_stored_once_per_user() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    let b = user(&mut conn, "b@example.com").await;
    matches::create(&mut conn, b, "sophia").await.unwrap();
    let client = Uuid::new_v4();
    let send = NewMessage::new(a, "sophia", Sender::User, "bonjour").with_client_id(client);
    let first = messages::insert_idempotent(&mut conn, &send).await.unwrap();
    assert!(matches!(first, Inserted::Created(_)));
    let retry = NewMessage {
        content: "bonjour (retry)".into(),
        ..send.clone()
    };
    let second = messages::insert_idempotent(&mut conn, &retry)
        .await
        .unwrap();
    assert!(matches!(second, Inserted::Existing(_)));
    assert_eq!(
        second.message(),
        first.message(),
        "the retry returns what was stored"
    );
    // Another user may use the same id; messages without one never collide.
    let other = NewMessage::new(b, "sophia", Sender::User, "salut").with_client_id(client);
    assert!(matches!(
        messages::insert_idempotent(&mut conn, &other)
            .await
            .unwrap(),
        Inserted::Created(_)
    ));
    for _ in 0..2 {
        let plain = NewMessage::new(a, "sophia", Sender::User, "sans id");
        assert!(matches!(
            messages::insert_idempotent(&mut conn, &plain)
                .await
                .unwrap(),
            Inserted::Created(_)
        ));
    }
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM chat_messages").await,
        "4"
    );
    // No match, no message.
    let stranger = NewMessage::new(a, "hugo", Sender::User, "coucou");
    assert!(matches!(
        messages::insert_idempotent(&mut conn, &stranger).await,
        Err(SendError::NoMatch)
    ));
}

/// A send is the hottest write: its INSERT is prepared once per connection and then only bound
/// and executed (with a message's optional columns written as `DEFAULT`, the statement was
/// parsed and planned again for every message).
#[tokio::test]
async fn a_send_reuses_its_prepared_insert_on_a_connection() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    for (i, client_id) in [None, Some(Uuid::new_v4()), None].into_iter().enumerate() {
        let mut send = NewMessage::new(u, "sophia", Sender::User, format!("message {i}"));
        send.client_id = client_id;
        let stored = messages::insert_idempotent(&mut conn, &send).await.unwrap();
        assert_eq!(stored.message().client_id, client_id, "NULL stays NULL");
    }
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM pg_prepared_statements \
             WHERE statement LIKE 'INSERT INTO \"chat_messages\"%'"
        )
        .await,
        "1",
        "one prepared INSERT, kept for the next send"
    );
}

/// What a cache miss reads is prepared once per connection too (and a page with a cursor is a
/// statement of its own); a search, whose best plan depends on the words, is not kept.
#[tokio::test]
async fn the_reads_behind_the_cache_are_prepared_once_per_connection() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    conversation(&mut conn, u, "sophia", 5).await;
    for _ in 0..3 {
        let page = messages::latest(&mut conn, u, "sophia", None, 2)
            .await
            .unwrap();
        messages::latest(&mut conn, u, "sophia", page.next, 2)
            .await
            .unwrap();
        photos::latest(&mut conn, u, "sophia", None, 20)
            .await
            .unwrap();
        matches::list_with_last_message(&mut conn, u).await.unwrap();
        messages::unread_count(&mut conn, u, "sophia")
            .await
            .unwrap();
        messages::mark_read(&mut conn, u, "sophia").await.unwrap();
        messages::search(&mut conn, u, "bonjour", None, 20)
            .await
            .unwrap();
    }
    let prepared = |name: &str| {
        format!("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '/* {name} */%'")
    };
    for (name, kept) in [
        ("messages.latest", "2"),
        ("photos.latest", "1"),
        ("matches.list_with_last_message", "1"),
        ("messages.unread_count", "1"),
        ("messages.mark_read", "1"),
        ("messages.search", "0"),
    ] {
        assert_eq!(scalar(&mut conn, &prepared(name)).await, kept, "{name}");
    }
}

#[tokio::test]
async fn bulk_insert_batches_within_the_bind_limit_all_or_nothing() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    assert_eq!(BULK_INSERT_BATCH, 1000);
    let rows: Vec<NewMessage> = (0..2_500)
        .map(|i| NewMessage::new(u, "sophia", Sender::User, format!("bulk {i}")))
        .collect();
    let (n, queries) = count_queries(messages::insert_many(&mut conn, &rows)).await;
    assert_eq!(n.unwrap(), 2_500);
    assert_eq!(
        queries,
        3 + 2,
        "three INSERTs of at most 1,000 rows, inside BEGIN/COMMIT"
    );
    // A bad row in the third batch: nothing of the call is kept.
    let mut bad = rows.clone();
    bad[2_300].content = String::new();
    assert!(messages::insert_many(&mut conn, &bad).await.is_err());
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM chat_messages").await,
        "2500"
    );
}

#[tokio::test]
async fn french_full_text_search_stems_ranks_highlights_and_stays_private() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = matched_user(&mut conn, "a@example.com", &["sophia", "hugo"]).await;
    let b = matched_user(&mut conn, "b@example.com", &["sophia"]).await;
    let say = |u, c: &str, text: &str| NewMessage::new(u, c, Sender::User, text);
    messages::insert_many(
        &mut conn,
        &[
            say(a, "sophia", "J'adore les croissants au beurre du marché."),
            say(
                a,
                "sophia",
                "Un croissant, un café, et la journée commence bien : croissant !",
            ),
            say(a, "hugo", "Je rêve de randonnée en montagne."),
            say(a, "hugo", "<b>croissant</b> & chocolat"),
            say(b, "sophia", "Mon croissant préféré est à Lyon."),
        ],
    )
    .await
    .unwrap();
    let hits = messages::search(&mut conn, a, "croissant", None, 10)
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        3,
        "stemming finds croissants and croissant; b's message stays b's"
    );
    assert!(
        hits[0].content.starts_with("Un croissant"),
        "two occurrences rank first: {hits:?}"
    );
    assert!(hits.iter().all(|h| h.headline.contains("<mark>")));
    let html = hits.iter().find(|h| h.character_id == "hugo").unwrap();
    assert!(
        html.headline.contains("&lt;/b&gt; &amp; chocolat"),
        "{}",
        html.headline
    );
    assert!(
        !html.headline.contains("<b>") && !html.headline.contains("</b>"),
        "{}",
        html.headline
    );
    let in_hugo = messages::search(&mut conn, a, "croissant", Some("hugo"), 10)
        .await
        .unwrap();
    assert_eq!(in_hugo.len(), 1);
    assert_eq!(
        messages::search(&mut conn, a, "montagnes", None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        messages::search(&mut conn, a, "de la et du", None, 10)
            .await
            .unwrap()
            .is_empty(),
        "stop words only"
    );
    assert!(
        messages::search(&mut conn, a, "\"unclosed OR -", None, 10)
            .await
            .is_ok(),
        "any input is a valid websearch query"
    );
}

#[tokio::test]
async fn memories_are_listed_searched_and_edited_by_their_owner_only() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    let b = matched_user(&mut conn, "b@example.com", &["sophia"]).await;
    let source = messages::insert_idempotent(
        &mut conn,
        &NewMessage::new(a, "sophia", Sender::User, "Mon chat s'appelle Pixel"),
    )
    .await
    .unwrap()
    .into_message();
    let remember = |content: &str, source_message_id| NewMemory {
        user_id: a,
        character_id: "sophia".into(),
        content: content.into(),
        source_message_id,
    };
    let m1 = memories::insert(
        &mut conn,
        &remember("Son chat s'appelle Pixel", Some(source.id)),
    )
    .await
    .unwrap()
    .0;
    let m2 = memories::insert(
        &mut conn,
        &remember("Aime les randonnées en Provence", None),
    )
    .await
    .unwrap()
    .0;

    let listed = memories::list(&mut conn, a, "sophia", None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m2.id, m1.id]
    );
    assert!(
        memories::list(&mut conn, b, "sophia", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let hits = memories::search(&mut conn, a, "randonnée", Some("sophia"), 10)
        .await
        .unwrap();
    assert_eq!(
        hits.iter().map(|h| h.memory.id).collect::<Vec<_>>(),
        vec![m2.id]
    );
    assert!(
        memories::search(&mut conn, b, "randonnée", None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        memories::update(&mut conn, b, m2.id, "volé")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!memories::delete(&mut conn, b, m2.id).await.unwrap());
    let edited = memories::update(&mut conn, a, m2.id, "Adore la Bretagne")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.content, "Adore la Bretagne");
    assert!(edited.updated_at >= edited.created_at);
    assert_eq!(
        memories::search(&mut conn, a, "bretagne", None, 10)
            .await
            .unwrap()
            .len(),
        1,
        "search sees the edit"
    );

    assert_eq!(
        memories::by_source_message(&mut conn, source.id)
            .await
            .unwrap()
            .len(),
        1
    );
    db_core::pool::batch_execute(
        &mut conn,
        &format!("DELETE FROM chat_messages WHERE id = {}", source.id),
    )
    .await
    .unwrap();
    assert!(
        memories::by_source_message(&mut conn, source.id)
            .await
            .unwrap()
            .is_empty(),
        "the memory went with its message"
    );
    assert!(memories::delete(&mut conn, a, m2.id).await.unwrap());
    assert!(
        memories::list(&mut conn, a, "sophia", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn photo_gallery_pages_newest_first() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    let b = user(&mut conn, "b@example.com").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let p = NewPhoto {
            user_id: a,
            character_id: "sophia".into(),
            storage_key: format!("k/{i}.png"),
            content_type: "image/png".into(),
            width: 64,
            height: 64,
            prompt: None,
        };
        ids.push(photos::insert(&mut conn, &p).await.unwrap().id);
    }
    let first = photos::latest(&mut conn, a, "sophia", None, 20)
        .await
        .unwrap();
    let second = photos::latest(&mut conn, a, "sophia", first.next, 20)
        .await
        .unwrap();
    let got: Vec<i64> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|p| p.id)
        .collect();
    ids.reverse();
    assert_eq!(got, ids);
    assert!(second.next.is_none());
    assert!(photos::get(&mut conn, b, ids[0]).await.unwrap().is_none());
    assert!(
        photos::latest(&mut conn, b, "sophia", None, 20)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn users_accounts_and_the_xp_leaderboard() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = user(&mut conn, "Alice@Example.com").await;
    let b = user(&mut conn, "bob@example.com").await;
    let c = user(&mut conn, "carol@example.com").await;
    let dup = db_core::models::NewUser {
        email: "ALICE@example.com".into(),
        password_hash: db_core::models::SecretString::new("x"),
        display_name: "again".into(),
    };
    assert!(matches!(
        users::create(&mut conn, &dup).await,
        Err(users::CreateUserError::EmailTaken)
    ));
    let found = users::find_by_email(&mut conn, " alice@EXAMPLE.com ")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.email.as_str()), (a, "alice@example.com"));
    assert_eq!(format!("{:?}", found.password_hash), "<redacted>");

    assert_eq!(users::add_xp(&mut conn, a, 50).await.unwrap(), Some(50));
    assert_eq!(users::add_xp(&mut conn, b, 120).await.unwrap(), Some(120));
    assert_eq!(users::add_xp(&mut conn, c, 50).await.unwrap(), Some(50));
    assert_eq!(
        users::add_xp(&mut conn, Uuid::new_v4(), 5).await.unwrap(),
        None
    );
    let top = users::top_by_xp(&mut conn, 2).await.unwrap();
    assert_eq!(top.iter().map(|e| e.xp).collect::<Vec<_>>(), vec![120, 50]);
    assert_eq!(top[0].user_id, b);
    assert_eq!(users::rank_of(&mut conn, b).await.unwrap().unwrap().rank, 1);
    assert_eq!(users::rank_of(&mut conn, a).await.unwrap().unwrap().rank, 2);
    assert_eq!(
        users::rank_of(&mut conn, c).await.unwrap().unwrap().rank,
        2,
        "ties share a rank"
    );
    assert!(
        users::rank_of(&mut conn, Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );

    let renamed = users::update_display_name(&mut conn, a, "Alice L.")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.display_name, "Alice L.");
    assert!(renamed.updated_at > renamed.created_at);
}

#[tokio::test]
async fn matches_are_created_once_and_need_a_real_character() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &[]).await;
    let (m, created) = matches::create(&mut conn, u, "sophia").await.unwrap();
    assert!(created && m.affection == 0);
    let (again, created) = matches::create(&mut conn, u, "sophia").await.unwrap();
    assert!(!created);
    assert_eq!(again, m);
    assert!(matches!(
        matches::create(&mut conn, u, "nobody").await,
        Err(matches::MatchError::UnknownCharacter)
    ));
    assert_eq!(
        matches::add_affection(&mut conn, u, "sophia", 7)
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        matches::add_affection(&mut conn, u, "hugo", 7)
            .await
            .unwrap(),
        None
    );
    let catalogue = characters::list(&mut conn).await.unwrap();
    assert_eq!(
        catalogue.len(),
        db_core::seed::demo_characters().unwrap().len()
    );
    assert_eq!(
        characters::get(&mut conn, "sophia")
            .await
            .unwrap()
            .unwrap()
            .name,
        "Sophia"
    );
}

#[tokio::test]
async fn refresh_sessions_rotate_once_and_revoke_by_family() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = user(&mut conn, "a@example.com").await;
    let family = Uuid::new_v4();
    let session = |hash: &[u8]| RefreshSession {
        id: Uuid::new_v4(),
        user_id: u,
        family_id: family,
        token_hash: SecretBytes::new(hash),
        expires_at: Utc::now() + chrono::Duration::days(30),
        used_at: None,
        revoked_at: None,
        created_at: Utc::now(),
    };
    let s1 = session(b"one");
    sessions::insert(&mut conn, &s1).await.unwrap();
    let found = sessions::find_by_token_hash(&mut conn, &SecretBytes::new(&b"one"[..]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, s1.id);
    assert!(
        sessions::mark_used(&mut conn, s1.id, Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !sessions::mark_used(&mut conn, s1.id, Utc::now())
            .await
            .unwrap(),
        "a second use is a replay"
    );
    let s2 = session(b"two");
    sessions::insert(&mut conn, &s2).await.unwrap();
    let before = Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(
        sessions::revoke_family(&mut conn, u, family).await.unwrap(),
        2
    );
    let recorded = sessions::revocations_since(&mut conn, before)
        .await
        .unwrap();
    assert_eq!(
        recorded.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        vec![family],
        "the family is recorded revoked, for every process's revocation set"
    );
    assert!(
        !sessions::mark_used(&mut conn, s2.id, Utc::now())
            .await
            .unwrap(),
        "revoked"
    );
    assert_eq!(
        sessions::revoke_all_for_user(&mut conn, u).await.unwrap(),
        Vec::<Uuid>::new()
    );
    let other = Uuid::new_v4();
    sessions::insert(
        &mut conn,
        &RefreshSession {
            family_id: other,
            ..session(b"three")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        sessions::revoke_all_for_user(&mut conn, u).await.unwrap(),
        vec![other],
        "log out everywhere revokes every live family"
    );
    assert_eq!(
        sessions::prune_revocations(&mut conn, Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
}

/// A fact is remembered once per match whatever its case, spacing or punctuation (an edit
/// into a fact already remembered merges the two), and a match keeps at most its bound:
/// memories drawn from messages go first, least recently confirmed first.
#[tokio::test]
async fn memories_are_unique_per_match_and_bounded() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let a = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    let source = messages::insert_idempotent(
        &mut conn,
        &NewMessage::new(a, "sophia", Sender::User, "J'adore le thé"),
    )
    .await
    .unwrap()
    .into_message();
    let new = |content: &str, from: Option<i64>| NewMemory {
        user_id: a,
        character_id: "sophia".into(),
        content: content.into(),
        source_message_id: from,
    };
    let (tea, created) = memories::insert(&mut conn, &new("Adore le thé", Some(source.id)))
        .await
        .unwrap();
    assert!(created);
    let (same, created) = memories::insert(&mut conn, &new("  adore LE thé !", None))
        .await
        .unwrap();
    assert!(!created, "the same fact");
    assert_eq!(same.id, tea.id);
    assert_eq!(same.content, "Adore le thé", "the first wording stays");
    assert!(same.updated_at > tea.updated_at, "confirmed");

    let (cat, _) = memories::insert(&mut conn, &new("A un chat", Some(source.id)))
        .await
        .unwrap();
    let (city, _) = memories::insert(&mut conn, &new("Vit à Lyon", None))
        .await
        .unwrap();
    // Editing one into another's fact makes them one.
    let merged = memories::update(&mut conn, a, city.id, "a un CHAT.")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged.id, cat.id);
    let ids = |items: Vec<db_core::models::Memory>| items.iter().map(|m| m.id).collect::<Vec<_>>();
    let all = ids(memories::list(&mut conn, a, "sophia", None, 10)
        .await
        .unwrap()
        .items);
    assert_eq!(all.len(), 2, "{all:?}");

    let (own, _) = memories::insert(&mut conn, &new("Joue du piano", None))
        .await
        .unwrap();
    let (own2, _) = memories::insert(&mut conn, &new("Aime la pluie", None))
        .await
        .unwrap();
    // Bound 3: the fact from a message confirmed least recently (the tea: the cat was just
    // confirmed by the merge) goes first.
    assert_eq!(memories::evict(&mut conn, a, "sophia", 3).await.unwrap(), 1);
    let kept = ids(memories::list(&mut conn, a, "sophia", None, 10)
        .await
        .unwrap()
        .items);
    assert!(
        !kept.contains(&tea.id) && kept.contains(&cat.id),
        "{kept:?}"
    );
    // Bound 1: the user's own, most recently confirmed, is what stays.
    assert_eq!(memories::evict(&mut conn, a, "sophia", 1).await.unwrap(), 2);
    let kept = ids(memories::list(&mut conn, a, "sophia", None, 10)
        .await
        .unwrap()
        .items);
    assert_eq!(kept, vec![own2.id]);
    let _ = own;
}
