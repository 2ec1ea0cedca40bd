//! What a person does to a conversation after the fact: a match opens with the character's
//! greeting (once), one's own messages are edited and deleted, everything is marked read at
//! once, a match ends (unmatch) with all it holds, and a reply keeps every version a swipe or a
//! continuation wrote. Each write is checked in PostgreSQL and in the caches it touches.

use std::time::Duration;

use db_core::models::{GenerationStatus, NewMemory, NewMessage, NewPhoto, Sender};
use db_core::store::{Ask, Own, Picked, Reward, Start};
use db_core::{Cache, Store};
use db_test::TestDb;
use uuid::Uuid;

use crate::fixtures::{matched_user, scalar, user};

async fn setup() -> (TestDb, Store, db_core::AsyncPgConnection) {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    // The catalogue, and a first user nobody uses (so that ids are not all 1).
    matched_user(&mut conn, "nobody@example.com", &[]).await;
    let store = Store::new(
        db.db(),
        Cache::new(db_core::RedisPool::new(&db_test::redis_config()).unwrap()),
    );
    (db, store, conn)
}

async fn count(conn: &mut db_core::AsyncPgConnection, sql: &str) -> i64 {
    scalar(conn, sql).await.parse().unwrap()
}

async fn send(store: &Store, u: Uuid, character: &str, sender: Sender, text: &str) -> i64 {
    store
        .conversations()
        .send(&NewMessage::new(u, character, sender, text))
        .await
        .unwrap()
        .into_message()
        .id
}

fn ask(user: Uuid, message: i64, regenerate: bool, extend: bool) -> Ask<'static> {
    Ask {
        user,
        character: "sophia",
        user_message_id: message,
        provider: "test",
        regenerate,
        extend,
        per_day: 100,
        lease: Duration::from_secs(15),
        client_key: None,
    }
}

fn reward() -> Reward {
    Reward {
        affection: 2,
        xp: 10,
        facts: vec!["J'adore la pluie".into()],
        max_memories: 200,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_match_opens_with_the_greeting_once_even_when_retried() {
    let (_db, store, mut conn) = setup().await;
    let u = user(&mut conn, "lea@example.com").await;
    // The list is cached before the match, as a client would have it.
    assert!(store.matches().list(u).await.unwrap().is_empty());
    // The same request three times, two of them at once.
    let matches = store.matches();
    let (a, b) = tokio::join!(matches.create(u, "sophia"), matches.create(u, "sophia"));
    let c = matches.create(u, "sophia").await.unwrap();
    let created = [a.unwrap().1, b.unwrap().1, c.1];
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    let greeting = scalar(
        &mut conn,
        "SELECT greeting FROM characters WHERE id = 'sophia'",
    )
    .await;
    let page = store
        .conversations()
        .page(u, "sophia", None, 50)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "one greeting: {:?}", page.items);
    assert_eq!(
        (page.items[0].sender, page.items[0].content.as_str()),
        (Sender::Character, greeting.as_str())
    );
    let listed = store.matches().get(u, "sophia").await.unwrap().unwrap();
    assert_eq!(
        (listed.last_message_content.as_deref(), listed.unread_count),
        (Some(greeting.as_str()), 1),
        "the match list shows the greeting, unread"
    );
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatching_deletes_the_match_and_all_it_holds_and_queues_its_files() {
    let (_db, store, mut conn) = setup().await;
    let u = user(&mut conn, "lea@example.com").await;
    store.matches().create(u, "sophia").await.unwrap();
    store.matches().create(u, "hugo").await.unwrap();
    let said = send(&store, u, "sophia", Sender::User, "J'adore la pluie.").await;
    store
        .memories()
        .create(
            &NewMemory {
                user_id: u,
                character_id: "sophia".into(),
                content: "J'adore la pluie".into(),
                source_message_id: Some(said),
            },
            200,
        )
        .await
        .unwrap();
    let Start::New { generation: g, .. } = store
        .generations()
        .start(ask(u, said, false, false))
        .await
        .unwrap()
    else {
        panic!("a new generation")
    };
    store
        .generations()
        .complete(&g, "Moi aussi !", None, &reward())
        .await
        .unwrap()
        .unwrap();
    store
        .photos()
        .add(&NewPhoto {
            user_id: u,
            character_id: "sophia".into(),
            storage_key: format!("photos/{u}/a.png"),
            content_type: "image/png".into(),
            width: 8,
            height: 8,
            prompt: None,
        })
        .await
        .unwrap();
    send(&store, u, "hugo", Sender::User, "Salut Hugo").await;
    // Every cached view is warm.
    assert_eq!(store.matches().list(u).await.unwrap().len(), 2);
    assert!(store.matches().contains(u, "sophia").await.unwrap());
    let before = store
        .conversations()
        .page(u, "sophia", None, 50)
        .await
        .unwrap();
    assert_eq!(before.items.len(), 3, "greeting, message, reply");
    store.photos().page(u, "sophia", None, 10).await.unwrap();
    store
        .conversations()
        .unread_count(u, "sophia")
        .await
        .unwrap();
    let of_sophia = |table: &str| {
        format!("SELECT count(*) FROM {table} WHERE user_id = '{u}' AND character_id = 'sophia'")
    };
    for table in [
        "chat_messages",
        "memories",
        "received_photos",
        "generations",
    ] {
        assert!(count(&mut conn, &of_sophia(table)).await > 0, "{table}");
    }

    assert!(store.matches().delete(u, "sophia").await.unwrap());

    for table in [
        "matches",
        "chat_messages",
        "memories",
        "received_photos",
        "generations",
        "photo_jobs",
    ] {
        assert_eq!(count(&mut conn, &of_sophia(table)).await, 0, "{table}");
    }
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT string_agg(storage_key, ',') FROM storage_deletions"
        )
        .await,
        format!("photos/{u}/a.png"),
        "the photo's file is queued for deletion"
    );
    // The caches agree at once.
    assert!(!store.matches().contains(u, "sophia").await.unwrap());
    let list = store.matches().list(u).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|m| m.character_id.as_str())
            .collect::<Vec<_>>(),
        ["hugo"]
    );
    assert!(
        store
            .conversations()
            .page(u, "sophia", None, 50)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .photos()
            .page(u, "sophia", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .conversations()
            .search(u, "pluie", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Hugo's conversation is untouched; a second unmatch finds nothing.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM chat_messages WHERE character_id = 'hugo'"
        )
        .await,
        2
    );
    assert!(!store.matches().delete(u, "sophia").await.unwrap());
    // Matching again starts afresh: the greeting alone, affection 0.
    assert!(store.matches().create(u, "sophia").await.unwrap().1);
    let again = store
        .conversations()
        .page(u, "sophia", None, 50)
        .await
        .unwrap();
    assert_eq!(again.items.len(), 1);
    assert_eq!(again.items[0].sender, Sender::Character);
    assert_eq!(
        store
            .matches()
            .get(u, "sophia")
            .await
            .unwrap()
            .unwrap()
            .affection,
        0
    );
    // The files queue is the media service's to empty.
    let due = store.photos().files_to_delete(10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(store.photos().files_deleted(&[due[0].0]).await.unwrap(), 1);
    assert!(store.photos().files_to_delete(10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ones_own_messages_are_edited_and_deleted_with_their_memories() {
    let (_db, store, mut conn) = setup().await;
    let u = user(&mut conn, "lea@example.com").await;
    let other = user(&mut conn, "hugo@example.com").await;
    store.matches().create(u, "sophia").await.unwrap();
    store.matches().create(other, "sophia").await.unwrap();
    let mine = send(&store, u, "sophia", Sender::User, "Je suis à Lyon.").await;
    let theirs = send(
        &store,
        u,
        "sophia",
        Sender::Character,
        "Lyon, quelle chance !",
    )
    .await;
    let stranger = send(&store, other, "sophia", Sender::User, "Bonjour").await;
    store
        .memories()
        .create(
            &NewMemory {
                user_id: u,
                character_id: "sophia".into(),
                content: "Je suis à Lyon".into(),
                source_message_id: Some(mine),
            },
            200,
        )
        .await
        .unwrap();
    // Warm window and list.
    store
        .conversations()
        .page(u, "sophia", None, 50)
        .await
        .unwrap();
    store.matches().list(u).await.unwrap();

    let conv = store.conversations();
    let Own::Done(edited) = conv
        .edit_own(u, mine, "Je suis à Marseille.")
        .await
        .unwrap()
    else {
        panic!("edited")
    };
    assert_eq!(edited.content, "Je suis à Marseille.");
    let page = conv.page(u, "sophia", None, 50).await.unwrap();
    assert_eq!(
        page.items.iter().find(|m| m.id == mine).unwrap().content,
        "Je suis à Marseille.",
        "the window reads the new text"
    );
    assert_eq!(
        conv.search(u, "Marseille", None, 10).await.unwrap().len(),
        1
    );
    assert!(
        conv.search(u, "Lyon", Some("sophia"), 10)
            .await
            .unwrap()
            .iter()
            .all(|h| h.id != mine)
    );
    // Not the user's words, or not the user's message at all.
    assert_eq!(conv.edit_own(u, theirs, "x").await.unwrap(), Own::NotTheirs);
    assert_eq!(
        conv.edit_own(u, stranger, "x").await.unwrap(),
        Own::NotFound
    );
    assert_eq!(conv.delete_own(u, theirs).await.unwrap(), Own::NotTheirs);
    assert_eq!(conv.delete_own(u, stranger).await.unwrap(), Own::NotFound);
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT content FROM chat_messages WHERE id = {stranger}")
        )
        .await,
        "Bonjour",
        "nothing of another user's changed"
    );

    assert!(matches!(conv.delete_own(u, mine).await.unwrap(), Own::Done(m) if m.id == mine));
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) FROM memories WHERE user_id = '{u}'")
        )
        .await,
        0,
        "the memory drawn from it went with it"
    );
    let page = conv.page(u, "sophia", None, 50).await.unwrap();
    assert!(page.items.iter().all(|m| m.id != mine));
    assert_eq!(
        page.items.len(),
        2,
        "the greeting and the character's message stay"
    );
    assert_eq!(
        store
            .matches()
            .get(u, "sophia")
            .await
            .unwrap()
            .unwrap()
            .last_message_id,
        Some(theirs)
    );
    assert_eq!(conv.delete_own(u, mine).await.unwrap(), Own::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_all_read_clears_every_conversation_and_its_cached_counts() {
    let (_db, store, mut conn) = setup().await;
    let u = user(&mut conn, "lea@example.com").await;
    let other = user(&mut conn, "hugo@example.com").await;
    for c in ["sophia", "hugo", "amelie"] {
        store.matches().create(u, c).await.unwrap();
    }
    store.matches().create(other, "sophia").await.unwrap();
    send(&store, u, "sophia", Sender::Character, "Tu dors ?").await;
    // Amélie's greeting is read; Hugo's and Sophia's are not.
    store.conversations().mark_read(u, "amelie").await.unwrap();
    // Warm: the counts, the list, the windows.
    let conv = store.conversations();
    assert_eq!(conv.unread_count(u, "sophia").await.unwrap(), 2);
    assert_eq!(conv.unread_count(u, "hugo").await.unwrap(), 1);
    store.matches().list(u).await.unwrap();
    conv.page(u, "sophia", None, 50).await.unwrap();

    let changed = conv.mark_all_read(u).await.unwrap();
    assert_eq!(
        changed,
        vec![("hugo".to_owned(), 1), ("sophia".to_owned(), 2)]
    );
    for c in ["sophia", "hugo", "amelie"] {
        assert_eq!(conv.unread_count(u, c).await.unwrap(), 0, "{c}");
    }
    assert!(
        store
            .matches()
            .list(u)
            .await
            .unwrap()
            .iter()
            .all(|m| m.unread_count == 0)
    );
    assert!(
        conv.page(u, "sophia", None, 50)
            .await
            .unwrap()
            .items
            .iter()
            .all(|m| m.is_read)
    );
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) FROM chat_messages WHERE user_id = '{other}' AND NOT is_read"
            )
        )
        .await,
        1,
        "another user's greeting stays unread"
    );
    assert!(conv.mark_all_read(u).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_a_reply_is_kept_and_one_is_picked_counted_once() {
    let (_db, store, mut conn) = setup().await;
    let u = user(&mut conn, "lea@example.com").await;
    let other = user(&mut conn, "hugo@example.com").await;
    store.matches().create(u, "sophia").await.unwrap();
    let said = send(&store, u, "sophia", Sender::User, "J'adore la pluie.").await;
    let gens = store.generations();
    let mut texts = Vec::new();
    let mut reply_id = 0;
    for (i, text) in ["Première.", "Deuxième.", "Troisième."].iter().enumerate() {
        let Start::New {
            generation: g,
            replaces,
            ..
        } = gens.start(ask(u, said, i > 0, false)).await.unwrap()
        else {
            panic!("a new generation")
        };
        let done = gens
            .complete(&g, text, replaces, &reward())
            .await
            .unwrap()
            .unwrap();
        reply_id = done.reply.id;
        texts.push(g.id);
    }
    let alternatives = gens.alternatives(u, reply_id).await.unwrap();
    assert_eq!(
        alternatives
            .iter()
            .map(|g| (g.id, g.content.as_deref().unwrap(), g.status))
            .collect::<Vec<_>>(),
        vec![
            (texts[0], "Première.", GenerationStatus::Superseded),
            (texts[1], "Deuxième.", GenerationStatus::Superseded),
            (texts[2], "Troisième.", GenerationStatus::Done),
        ]
    );
    assert!(gens.alternatives(other, reply_id).await.unwrap().is_empty());
    // Warm window, then pick the first version back.
    store
        .conversations()
        .page(u, "sophia", None, 50)
        .await
        .unwrap();
    let Picked::Picked(m) = gens.pick(u, reply_id, texts[0]).await.unwrap() else {
        panic!("picked")
    };
    assert_eq!((m.id, m.content.as_str()), (reply_id, "Première."));
    assert_eq!(
        store
            .conversations()
            .page(u, "sophia", None, 50)
            .await
            .unwrap()
            .items[0]
            .content,
        "Première.",
        "the window (what the next prompt reads) has the picked text"
    );
    let statuses = gens.alternatives(u, reply_id).await.unwrap();
    assert_eq!(
        statuses
            .iter()
            .filter(|g| g.status == GenerationStatus::Done)
            .map(|g| g.id)
            .collect::<Vec<_>>(),
        vec![texts[0]],
        "one live version"
    );
    // Picking it again changes nothing; another user's pick, or a wrong pair, finds nothing.
    assert!(matches!(
        gens.pick(u, reply_id, texts[0]).await.unwrap(),
        Picked::Picked(_)
    ));
    assert_eq!(
        gens.pick(other, reply_id, texts[1]).await.unwrap(),
        Picked::NotFound
    );
    assert_eq!(
        gens.pick(u, said, texts[1]).await.unwrap(),
        Picked::NotFound
    );
    assert_eq!(
        gens.pick(u, reply_id, Uuid::new_v4()).await.unwrap(),
        Picked::NotFound
    );
    // Asking for the reply again returns the picked version.
    assert!(matches!(
        gens.start(ask(u, said, false, false)).await.unwrap(),
        Start::Existing(g) if g.id == texts[0]
    ));
    // While a swipe runs, nothing can be picked.
    let Start::New {
        generation: running,
        ..
    } = gens.start(ask(u, said, true, false)).await.unwrap()
    else {
        panic!("a swipe")
    };
    assert_eq!(
        gens.pick(u, reply_id, texts[1]).await.unwrap(),
        Picked::Busy
    );
    gens.fail(running.id).await.unwrap();
    // Three versions, one reply, counted once.
    let of = |sql: &str| sql.replace("$u", &u.to_string());
    assert_eq!(
        scalar(&mut conn, &of("SELECT concat_ws(',', (SELECT count(*) FROM chat_messages WHERE user_id = '$u' AND sender = 'character'), (SELECT affection FROM matches WHERE user_id = '$u'), (SELECT xp FROM users WHERE id = '$u'), (SELECT count(*) FROM memories WHERE user_id = '$u'))")).await,
        "2,2,10,1",
        "greeting + one reply, affection 2, XP 10, one memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_extends_the_reply_as_a_new_version_and_counts_nothing() {
    let (_db, store, mut conn) = setup().await;
    let u = user(&mut conn, "lea@example.com").await;
    store.matches().create(u, "sophia").await.unwrap();
    let said = send(&store, u, "sophia", Sender::User, "Raconte-moi ta journée.").await;
    let gens = store.generations();
    // Nothing to continue before the reply exists.
    assert!(matches!(
        gens.start(ask(u, said, false, true)).await.unwrap(),
        Start::NothingToContinue
    ));
    let Start::New { generation: g, .. } = gens.start(ask(u, said, false, false)).await.unwrap()
    else {
        panic!()
    };
    let reply = gens
        .complete(&g, "J'ai rangé la librairie.", None, &reward())
        .await
        .unwrap()
        .unwrap()
        .reply;
    let Start::New {
        generation: c,
        replaces: Some(replaced),
        ..
    } = gens.start(ask(u, said, false, true)).await.unwrap()
    else {
        panic!("a continuation")
    };
    assert_eq!(replaced, reply.id);
    assert_eq!(c.prefix.as_deref(), Some("J'ai rangé la librairie."));
    // Its writer dies: whoever takes it over continues the same text.
    {
        use diesel_async::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE generations SET lease_until = now() - interval '1 second' WHERE id = '{}'",
            c.id
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let Start::New {
        generation: c2,
        replaces: Some(again),
        took_over: true,
    } = gens.start(ask(u, said, false, false)).await.unwrap()
    else {
        panic!("taken over")
    };
    assert_eq!(
        (again, c2.prefix.as_deref()),
        (reply.id, Some("J'ai rangé la librairie."))
    );
    let done = gens
        .complete(
            &c2,
            "J'ai rangé la librairie. Puis il a plu.",
            Some(again),
            &reward(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.affection, done.xp),
        (None, None),
        "nothing counted again"
    );
    assert_eq!(done.reply.id, reply.id);
    let versions: Vec<_> = gens
        .alternatives(u, reply.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.content.unwrap(), g.prefix.is_some()))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("J'ai rangé la librairie.".to_owned(), false),
            ("J'ai rangé la librairie. Puis il a plu.".to_owned(), true)
        ]
    );
    assert_eq!(
        store
            .conversations()
            .page(u, "sophia", None, 50)
            .await
            .unwrap()
            .items[0]
            .content,
        "J'ai rangé la librairie. Puis il a plu."
    );
}
