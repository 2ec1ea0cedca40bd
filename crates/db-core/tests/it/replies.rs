//! A character's reply: claimed once, completed once with everything it is worth, taken over
//! once when its writer dies, rewritten in place by a swipe.

use std::time::Duration;

use db_core::models::{GenerationStatus, NewMessage, Sender};
use db_core::store::{Ask, Reward, Start};
use db_core::{Cache, Store};
use db_test::TestDb;
use uuid::Uuid;

use crate::fixtures::matched_user;

async fn setup() -> (TestDb, Store, Uuid, i64) {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    let store = Store::new(
        db.db(),
        Cache::new(db_core::RedisPool::new(&db_test::redis_config()).unwrap()),
    );
    let m = store
        .conversations()
        .send(&NewMessage::new(
            u,
            "sophia",
            Sender::User,
            "Je m'appelle Léa.",
        ))
        .await
        .unwrap()
        .into_message()
        .id;
    (db, store, u, m)
}

fn ask(user: Uuid, message: i64, regenerate: bool, lease: Duration) -> Ask<'static> {
    Ask {
        user,
        character: "sophia",
        user_message_id: message,
        provider: "test",
        regenerate,
        extend: false,
        per_day: 100,
        lease,
        client_key: None,
    }
}

fn reward() -> Reward {
    Reward {
        affection: 2,
        xp: 10,
        facts: vec!["Je m'appelle Léa".into()],
        max_memories: 200,
    }
}

async fn counts(store: &Store, u: Uuid) -> (usize, i32, i64, usize) {
    let replies = store
        .conversations()
        .page(u, "sophia", None, 100)
        .await
        .unwrap()
        .items
        .iter()
        .filter(|m| m.sender == Sender::Character)
        .count();
    let affection = store
        .matches()
        .get(u, "sophia")
        .await
        .unwrap()
        .unwrap()
        .affection;
    let xp = store.users().profile(u).await.unwrap().unwrap().xp;
    let memories = store
        .memories()
        .list(u, "sophia", None, 100)
        .await
        .unwrap()
        .items
        .len();
    (replies, affection, xp, memories)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_is_stored_and_counted_once_in_one_transaction() {
    let (_db, store, u, m) = setup().await;
    let gens = store.generations();
    let Start::New {
        generation: g,
        replaces: None,
        took_over: false,
    } = gens
        .start(ask(u, m, false, Duration::from_secs(15)))
        .await
        .unwrap()
    else {
        panic!("a new generation")
    };
    assert!(
        gens.append_tokens(g.id, &["Enchantée".into()], Duration::from_secs(15))
            .await
            .unwrap()
    );
    let done = gens
        .complete(&g, "Enchantée, Léa !", None, &reward())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.affection, done.xp), (Some(2), Some(10)));
    assert_eq!(
        counts(&store, u).await,
        (1, 2, 10, 1),
        "reply, affection, XP, memory"
    );
    // Completing it again (a retry, a late writer): nothing is written or counted.
    assert!(
        gens.complete(&g, "encore", None, &reward())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(counts(&store, u).await, (1, 2, 10, 1));
    // Asking again returns what exists.
    let again = gens
        .start(ask(u, m, false, Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(matches!(again, Start::Existing(ref g) if g.status == GenerationStatus::Done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writers_reply_is_taken_over_once_and_its_late_completion_is_refused() {
    let (_db, store, u, m) = setup().await;
    let gens = store.generations();
    let lease = Duration::from_millis(300);
    let Start::New {
        generation: dead, ..
    } = gens.start(ask(u, m, false, lease)).await.unwrap()
    else {
        panic!("a new generation")
    };
    // Within the lease: the conversation is busy with it.
    assert!(matches!(
        gens.start(ask(u, m, false, lease)).await.unwrap(),
        Start::Existing(ref g) if g.id == dead.id
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Two askers race after the lease ran out: one takes it over, the other follows it.
    let (a, b) = tokio::join!(
        gens.start(ask(u, m, false, Duration::from_secs(15))),
        gens.start(ask(u, m, false, Duration::from_secs(15)))
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let new: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Start::New {
                generation,
                took_over: true,
                ..
            } => Some(generation.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "taken over exactly once: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Start::Existing(g) if g.id == new[0].id))
    );
    // The dead writer wakes up: its tokens and its reply are refused.
    assert!(
        !gens
            .append_tokens(dead.id, &["tard".into()], lease)
            .await
            .unwrap()
    );
    assert!(
        gens.complete(&dead, "trop tard", None, &reward())
            .await
            .unwrap()
            .is_none()
    );
    gens.complete(&new[0], "Me revoilà !", None, &reward())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        counts(&store, u).await,
        (1, 2, 10, 1),
        "one reply, counted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swipe_rewrites_the_reply_in_place_and_counts_nothing_again() {
    let (_db, store, u, m) = setup().await;
    let gens = store.generations();
    let lease = Duration::from_secs(15);
    let Start::New { generation: g, .. } = gens.start(ask(u, m, false, lease)).await.unwrap()
    else {
        panic!()
    };
    let first = gens
        .complete(&g, "Première.", None, &reward())
        .await
        .unwrap()
        .unwrap()
        .reply;
    let Start::New {
        generation: s,
        replaces: Some(replaced),
        ..
    } = gens.start(ask(u, m, true, lease)).await.unwrap()
    else {
        panic!("a swipe")
    };
    assert_eq!(replaced, first.id);
    let second = gens
        .complete(&s, "Seconde.", Some(replaced), &reward())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.reply.id, second.reply.content.as_str()),
        (first.id, "Seconde.")
    );
    assert_eq!(counts(&store, u).await, (1, 2, 10, 1));
    let page = store
        .conversations()
        .page(u, "sophia", None, 10)
        .await
        .unwrap();
    assert_eq!(
        page.items[0].content, "Seconde.",
        "the window shows the new text"
    );
}
