use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use db_core::cache::Family;
use db_core::models::{NewMessage, NewPhoto, Photo, Sender};
use db_core::{Cache, RedisConfig, RedisPool, Store};
use db_test::{TestDb, clear_of_a_minute_edge};
use uuid::Uuid;

use crate::fixtures::{conversation, matched_user};

fn live_cache(prefix_of: Option<&RedisConfig>) -> Cache {
    let config = prefix_of.cloned().unwrap_or_else(db_test::redis_config);
    Cache::new(RedisPool::new(&config).unwrap())
}

/// Redis at a port where nothing listens.
fn dead_cache() -> Cache {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        ..db_test::redis_config()
    };
    Cache::new(RedisPool::new(&config).unwrap())
}

/// A gallery's page as the API sends it (each photo as stored), read back; `None` without a
/// match.
async fn gallery(store: &Store, user: Uuid, character: &str, limit: i64) -> Option<Vec<Photo>> {
    let body = store
        .photos()
        .page_body(user, character, None, limit, |p| p)
        .await
        .unwrap()?;
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    Some(serde_json::from_value(page["items"].clone()).unwrap())
}

fn hits(cache: &Cache, f: Family) -> (u64, u64) {
    let s = cache.family_stats(f);
    (s.hits, s.misses)
}

async fn setup(cache: Cache) -> (TestDb, Store, Uuid) {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let user = matched_user(&mut conn, "a@example.com", &["sophia", "hugo"]).await;
    conversation(&mut conn, user, "sophia", 30).await;
    let store = Store::new(db.db(), cache);
    (db, store, user)
}

#[tokio::test]
async fn the_conversation_as_json_is_the_conversation() {
    for cache in [live_cache(None), dead_cache()] {
        let (_db, store, u) = setup(cache).await;
        for _ in 0..2 {
            // A miss, then a hit: the same documents either way.
            let page = store
                .conversations()
                .page(u, "sophia", None, 20)
                .await
                .unwrap();
            let body = store
                .conversations()
                .page_body(u, "sophia", None, 20)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                String::from_utf8(body).unwrap(),
                serde_json::to_string(&page).unwrap(),
                "the window's bytes are the page's document"
            );
            let older = store
                .conversations()
                .page_body(u, "sophia", page.next, 20)
                .await
                .unwrap()
                .unwrap();
            let older: serde_json::Value = serde_json::from_slice(&older).unwrap();
            assert_eq!(older["items"].as_array().unwrap().len(), 10);
            assert_eq!(older["next"], serde_json::Value::Null);
            // Someone else's conversation, or one without a match: nothing, cached or not.
            let stranger = Uuid::new_v4();
            for (who, with) in [(stranger, "sophia"), (u, "luna")] {
                assert!(
                    store
                        .conversations()
                        .page_body(who, with, None, 20)
                        .await
                        .unwrap()
                        .is_none()
                );
            }
        }
    }
}

#[tokio::test]
async fn a_gallery_page_as_sent_is_the_gallery_and_goes_with_its_match() {
    for cache in [live_cache(None), dead_cache()] {
        let (_db, store, u) = setup(cache).await;
        let mut sent = Vec::new();
        for n in 0..3 {
            let photo = NewPhoto {
                user_id: u,
                character_id: "sophia".into(),
                storage_key: format!("p{n}.png"),
                content_type: "image/png".into(),
                width: 8,
                height: 8,
                prompt: Some(format!("tab\there, line\nthere, \"{n}\"")),
            };
            sent.push(store.photos().add(&photo).await.unwrap());
        }
        sent.reverse();
        for _ in 0..2 {
            // A miss, then a hit: the page PostgreSQL has, `next` set whenever it is full.
            for limit in 1..=4 {
                let body = store
                    .photos()
                    .page_body(u, "sophia", None, limit, |p| p)
                    .await
                    .unwrap()
                    .unwrap();
                let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let from_pg = store.photos().page(u, "sophia", None, limit).await.unwrap();
                let items: Vec<Photo> = serde_json::from_value(page["items"].clone()).unwrap();
                assert_eq!(items, from_pg.items);
                assert_eq!(items, sent[..sent.len().min(limit as usize)]);
                assert_eq!(page["next"].is_string(), limit <= 3, "limit {limit}");
            }
        }
        // The match goes: so does its cached page, which no longer proves anything.
        assert!(store.matches().delete(u, "sophia").await.unwrap());
        assert_eq!(gallery(&store, u, "sophia", 20).await, None);
    }
}

#[tokio::test]
async fn the_gateways_limits_count_address_and_user_apart_and_never_fail_open() {
    clear_of_a_minute_edge().await;
    let user = Uuid::new_v4();
    // Counted in process (shared through Redis in the background): the same answers with
    // Redis up or down.
    for cache in [live_cache(None), dead_cache()] {
        let limits = db_core::SyncedLimits::new(cache);
        let first = limits.gate("10.0.0.1", Some(user), 60, 3, 2);
        assert_eq!((first.ip.remaining, first.ip.exceeded), (2, false));
        assert_eq!(
            first.user.map(|l| (l.remaining, l.exceeded)),
            Some((1, false))
        );
        let second = limits.gate("10.0.0.1", Some(user), 60, 3, 2);
        assert!(!second.user.unwrap().exceeded);
        let third = limits.gate("10.0.0.1", Some(user), 60, 3, 2);
        assert!(third.user.unwrap().exceeded, "the user's limit");
        assert!(!third.ip.exceeded);
        let public = limits.gate("10.0.0.1", None, 60, 3, 2);
        assert!(public.ip.exceeded, "the IP's limit counts public calls too");
        assert_eq!(public.user, None);
        let other = limits.gate("10.0.0.2", None, 60, 3, 2);
        assert!(!other.ip.exceeded, "each address has its own count");
    }
}

/// Each thread keeps the counters it found in the current window, but they are the process's:
/// hits from two threads (and from the thread that asks next) add up, for an address and a user
/// alike; a window longer than a minute is counted without them, the same way.
#[tokio::test]
async fn the_counters_a_thread_keeps_are_the_processs() {
    clear_of_a_minute_edge().await;
    let limits = db_core::SyncedLimits::new(dead_cache());
    let user = Some(Uuid::new_v4());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let limits = limits.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    limits.gate("10.0.0.7", user, 60, 100, 100);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let g = limits.gate("10.0.0.7", user, 60, 100, 100);
    assert_eq!(g.ip.remaining, 100 - 21, "2 threads x 10 + this one");
    assert_eq!(g.user.unwrap().remaining, 100 - 21);
    // Another instance on this same thread has counters of its own.
    let other = db_core::SyncedLimits::new(dead_cache());
    assert_eq!(other.gate("10.0.0.7", user, 60, 100, 100).ip.remaining, 99);
    assert_eq!(
        limits.gate("10.0.0.7", None, 60, 100, 100).ip.remaining,
        100 - 22
    );
    for n in 1..=3 {
        assert_eq!(limits.gate("10.0.0.8", None, 120, 5, 5).ip.remaining, 5 - n);
    }
}

/// While a sync is on its way to Redis, the hits it carries still count in the process: the
/// request after three is the fourth, not the first. And they are not counted twice once the
/// total is back, nor lost when Redis does not answer.
#[tokio::test]
async fn hits_on_their_way_to_redis_still_count() {
    use std::task::Poll;
    clear_of_a_minute_edge().await;
    for (cache, answers) in [(live_cache(None), true), (dead_cache(), false)] {
        let limits = db_core::SyncedLimits::new(cache);
        for _ in 0..3 {
            limits.gate("10.0.0.3", None, 60, 100, 100);
        }
        let sync = limits.sync();
        tokio::pin!(sync);
        // Polled once: the hits are taken for Redis, its answer is (most likely) not back.
        let first = futures_util::poll!(&mut sync);
        assert_eq!(
            limits.gate("10.0.0.3", None, 60, 100, 100).ip.remaining,
            100 - 4
        );
        let synced = match first {
            Poll::Ready(synced) => synced,
            Poll::Pending => sync.await,
        };
        assert_eq!(synced, answers);
        assert_eq!(
            limits.gate("10.0.0.3", None, 60, 100, 100).ip.remaining,
            100 - 5,
            "Redis answered: {answers}"
        );
    }
}

/// Two gateways, each counting in memory: a request costs no round trip, and after a sync each
/// sees what the other counted. With Redis down each limits on its own, and nothing opens.
#[tokio::test]
async fn synced_limits_are_shared_after_a_sync_and_local_without_redis() {
    clear_of_a_minute_edge().await;
    let cache = live_cache(None);
    let (a, b) = (
        db_core::SyncedLimits::new(cache.clone()),
        db_core::SyncedLimits::new(cache.clone()),
    );
    let user = Some(Uuid::new_v4());
    for _ in 0..3 {
        assert!(!a.gate("10.0.0.1", user, 60, 100, 5).user.unwrap().exceeded);
    }
    assert_eq!(
        b.gate("10.0.0.1", user, 60, 100, 5).user.unwrap().remaining,
        4,
        "b has not heard of a's hits yet"
    );
    assert!(a.sync().await && b.sync().await && a.sync().await);
    let seen = a.gate("10.0.0.1", user, 60, 100, 5);
    assert_eq!(
        seen.user.unwrap().remaining,
        0,
        "a: its 3 + b's 1 + this one"
    );
    assert!(a.sync().await && b.sync().await);
    assert!(
        b.gate("10.0.0.1", user, 60, 100, 5).user.unwrap().exceeded,
        "b: the 5 counted so far + this one"
    );
    assert_eq!(
        seen.ip.remaining, 96,
        "far from its limit, a's idle address counter was not read back: its own 3 + this one"
    );
    assert_eq!(
        a.gate("10.0.0.1", None, 60, 100, 5).ip.remaining,
        94,
        "the sync that added a's hit read b's too: 3 + 1 (b) + 1 + this one"
    );

    let dead = db_core::SyncedLimits::new(dead_cache());
    for i in 1..=6 {
        let g = dead.gate("10.0.0.9", user, 60, 100, 5);
        assert_eq!(g.user.unwrap().exceeded, i > 5);
    }
    assert!(!dead.sync().await, "nothing to sync with");
    assert!(
        dead.gate("10.0.0.9", user, 60, 100, 5)
            .user
            .unwrap()
            .exceeded,
        "the hits are kept"
    );
}

#[tokio::test]
async fn login_failures_block_only_their_account_and_address() {
    for cache in [live_cache(None), dead_cache()] {
        let (victim, attacker, owner) = ("lea@example.com", "203.0.113.9", "198.51.100.4");
        for _ in 0..db_core::cache::limits::LOGIN_FREE_FAILURES - 1 {
            assert_eq!(
                db_core::Limits::of(&cache)
                    .sign_in_blocked(victim, attacker)
                    .await,
                None
            );
            db_core::Limits::of(&cache)
                .sign_in_failed(victim, attacker)
                .await;
        }
        assert_eq!(
            db_core::Limits::of(&cache)
                .sign_in_blocked(victim, attacker)
                .await,
            None
        );
        db_core::Limits::of(&cache)
            .sign_in_failed(victim, attacker)
            .await;
        let wait = db_core::Limits::of(&cache)
            .sign_in_blocked(victim, attacker)
            .await;
        assert!(matches!(wait, Some(1..=2)), "backoff starts: {wait:?}");
        assert_eq!(
            db_core::Limits::of(&cache)
                .sign_in_blocked(victim, owner)
                .await,
            None,
            "the owner, elsewhere, is never blocked by someone else's failures"
        );
        assert_eq!(
            db_core::Limits::of(&cache)
                .sign_in_blocked("other@example.com", attacker)
                .await,
            None
        );
        db_core::Limits::of(&cache)
            .sign_in_succeeded(victim, attacker)
            .await;
        assert_eq!(
            db_core::Limits::of(&cache)
                .sign_in_blocked(victim, attacker)
                .await,
            None
        );
    }
}

#[tokio::test]
async fn the_match_check_is_one_membership_test_on_the_cached_list() {
    for cache in [live_cache(None), dead_cache(), Cache::disabled()] {
        let (_db, store, u) = setup(cache).await;
        let c = &store.cache();
        let before = hits(c, Family::MatchList);
        assert!(
            store.matches().contains(u, "sophia").await.unwrap(),
            "loads on a miss"
        );
        assert!(store.matches().contains(u, "hugo").await.unwrap());
        assert!(!store.matches().contains(u, "amelie").await.unwrap());
        assert!(
            !store.matches().contains(u, "~").await.unwrap(),
            "the list's sentinel is no match"
        );
        assert!(
            !store
                .matches()
                .contains(Uuid::new_v4(), "sophia")
                .await
                .unwrap()
        );
        // A new match drops the list: the check sees it at once.
        store.matches().create(u, "amelie").await.unwrap();
        assert!(store.matches().contains(u, "amelie").await.unwrap());
        let (h, m) = hits(c, Family::MatchList);
        if c.is_enabled() && c.family_stats(Family::MatchList).bypassed == 0 {
            // Misses: the first load, the stranger's, the reload after the new match.
            assert_eq!((h - before.0, m - before.1), (3, 3));
        }
    }
}

#[tokio::test]
async fn second_reads_are_hits_and_writes_are_seen_at_once() {
    let (_db, store, u) = setup(live_cache(None)).await;
    let c = &store.cache();

    // Conversation: a miss, then hits; a send keeps it a hit and shows the message.
    let first = store
        .conversations()
        .page(u, "sophia", None, 20)
        .await
        .unwrap();
    assert_eq!(first.items[0].content, "message 29");
    let again = store
        .conversations()
        .page(u, "sophia", None, 20)
        .await
        .unwrap();
    assert_eq!(again.items, first.items);
    assert_eq!(hits(c, Family::Conversation), (1, 1));
    let sent = store
        .conversations()
        .send(&NewMessage::new(u, "sophia", Sender::User, "tout nouveau"))
        .await
        .unwrap()
        .into_message();
    let after = store
        .conversations()
        .page(u, "sophia", None, 20)
        .await
        .unwrap();
    assert_eq!(after.items[0], sent);
    assert_eq!(after.items[1].content, "message 29");
    assert_eq!(
        hits(c, Family::Conversation),
        (2, 1),
        "the send updated the window in place"
    );

    // Profile: hit, then an edit is visible on the next read.
    assert_eq!(
        store
            .users()
            .profile(u)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "a"
    );
    store.users().profile(u).await.unwrap();
    assert_eq!(hits(c, Family::UserProfile), (1, 1));
    store.users().update_display_name(u, "Alice").await.unwrap();
    assert_eq!(
        store
            .users()
            .profile(u)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Alice"
    );
    store.users().add_xp(u, 40).await.unwrap();
    assert_eq!(
        store.users().profile(u).await.unwrap().unwrap().xp,
        40,
        "an XP change is visible"
    );

    // Match list: hit; the send above and a reply from the character show up.
    let list = store.matches().list(u).await.unwrap();
    assert_eq!(
        list[0].last_message_content.as_deref(),
        Some("tout nouveau")
    );
    store.matches().list(u).await.unwrap();
    assert_eq!(hits(c, Family::MatchList), (1, 1));
    store
        .conversations()
        .send(&NewMessage::new(u, "hugo", Sender::Character, "coucou"))
        .await
        .unwrap();
    let list = store.matches().list(u).await.unwrap();
    assert_eq!(
        (list[0].character_id.as_str(), list[0].unread_count),
        ("hugo", 1)
    );
    assert_eq!(list[0].last_message_sender, Some(Sender::Character));
    assert_eq!(
        hits(c, Family::MatchList),
        (2, 1),
        "the send updated the list in place"
    );
    store.conversations().mark_read(u, "hugo").await.unwrap();
    assert_eq!(store.matches().list(u).await.unwrap()[0].unread_count, 0);
    assert_eq!(hits(c, Family::MatchList), (3, 1));

    // Characters: the catalogue, from Redis, then process memory; one character is looked up in
    // it, so unknown ids cache nothing anywhere.
    let sophia = store.catalogue().get("sophia").await.unwrap().unwrap();
    assert_eq!(sophia.name, "Sophia");
    store.catalogue().get("sophia").await.unwrap();
    store.catalogue().all().await.unwrap();
    store.catalogue().all().await.unwrap();
    assert_eq!(hits(c, Family::Character), (3, 1));
    assert!(store.catalogue().get("nobody").await.unwrap().is_none());
    assert!(
        store
            .catalogue()
            .get(&"x".repeat(30_000))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .catalogue()
            .get("sophia:lock")
            .await
            .unwrap()
            .is_none()
    );
    if let Some(redis) = c.redis_pool() {
        let mut exists = redis::cmd("EXISTS");
        exists
            .arg(c.keys().character("nobody"))
            .arg(c.keys().character("sophia"));
        assert_eq!(
            redis.query::<i64>(&exists).await.unwrap(),
            0,
            "no key per id"
        );
    }

    // Photo page: hit; a new photo is visible at once.
    assert_eq!(gallery(&store, u, "sophia", 20).await, Some(vec![]));
    assert_eq!(gallery(&store, u, "sophia", 20).await, Some(vec![]));
    assert_eq!(hits(c, Family::PhotoPage), (1, 1));
    let photo = store
        .photos()
        .add(&NewPhoto {
            user_id: u,
            character_id: "sophia".into(),
            storage_key: "k.png".into(),
            content_type: "image/png".into(),
            width: 8,
            height: 8,
            prompt: None,
        })
        .await
        .unwrap();
    assert_eq!(gallery(&store, u, "sophia", 20).await, Some(vec![photo]));

    // Unread: counted from the partial index once, then +1 in place, reset by mark read.
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        15
    );
    store
        .conversations()
        .send(&NewMessage::new(
            u,
            "sophia",
            Sender::Character,
            "tu dors ?",
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        16
    );
    assert_eq!(hits(c, Family::Unread), (1, 1));
    assert_eq!(
        store.conversations().mark_read(u, "sophia").await.unwrap(),
        16
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
            .page(u, "sophia", None, 5)
            .await
            .unwrap()
            .items
            .iter()
            .all(|m| m.is_read)
    );

    // Typing lasts 10 s; deleting a message drops the window.
    store
        .conversations()
        .set_typing(u, "sophia", Sender::Character)
        .await;
    assert_eq!(
        store.conversations().typing(u, "sophia").await,
        Some(Sender::Character)
    );
    assert_eq!(store.conversations().typing(u, "hugo").await, None);
    store
        .conversations()
        .delete(u, sent.id)
        .await
        .unwrap()
        .unwrap();
    let after_delete = store
        .conversations()
        .page(u, "sophia", None, 100)
        .await
        .unwrap();
    assert!(after_delete.items.iter().all(|m| m.id != sent.id));
    let edited = store
        .conversations()
        .edit(u, after_delete.items[0].id, "modifié")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .conversations()
            .page(u, "sophia", None, 1)
            .await
            .unwrap()
            .items[0],
        edited
    );
}

#[tokio::test]
async fn the_window_keeps_the_newest_hundred_in_order_under_concurrent_sends() {
    let (_db, store, u) = setup(live_cache(None)).await;
    let mut conn = _db.conn().await.unwrap();
    conversation(&mut conn, u, "hugo", 95).await;
    store
        .conversations()
        .page(u, "hugo", None, 100)
        .await
        .unwrap();
    store.matches().list(u).await.unwrap();
    let sends = (0..40).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .conversations()
                .send(&NewMessage::new(
                    u,
                    "hugo",
                    Sender::User,
                    format!("vite {i}"),
                ))
                .await
                .unwrap()
        })
    });
    for s in sends {
        s.await.unwrap();
    }
    let cached = store
        .conversations()
        .page(u, "hugo", None, 100)
        .await
        .unwrap()
        .items;
    let mut fresh = conn_latest(&_db, u).await;
    fresh.truncate(100);
    assert_eq!(cached.len(), 100);
    assert_eq!(
        cached, fresh,
        "the window equals PostgreSQL's newest 100, in order"
    );
    assert_eq!(store.cache().family_stats(Family::Conversation).misses, 1);
    let list = store.matches().list(u).await.unwrap();
    let hugo = list.iter().find(|m| m.character_id == "hugo").unwrap();
    assert_eq!(
        hugo.last_message_id,
        Some(fresh[0].id),
        "the newest send is the last message, whatever order the updates ran in"
    );
}

/// A quarter past the window the oldest are cut off in one rewrite; the window stays PostgreSQL's
/// newest hundred, in order, through the rewrites.
#[tokio::test]
async fn the_window_stays_the_newest_hundred_through_its_rewrites() {
    let (_db, store, u) = setup(live_cache(None)).await;
    let mut conn = _db.conn().await.unwrap();
    conversation(&mut conn, u, "hugo", 120).await;
    let page = |store: Store| async move {
        store
            .conversations()
            .page(u, "hugo", None, 100)
            .await
            .unwrap()
    };
    page(store.clone()).await;
    for i in 0..230 {
        store
            .conversations()
            .send(&NewMessage::new(
                u,
                "hugo",
                Sender::User,
                format!("encore {i}"),
            ))
            .await
            .unwrap();
    }
    let cached = page(store.clone()).await;
    let fresh = conn_latest(&_db, u).await;
    assert_eq!(cached.items, fresh);
    assert_eq!(cached.next, {
        let mut conn = _db.conn().await.unwrap();
        db_core::queries::messages::latest(&mut conn, u, "hugo", None, 100)
            .await
            .unwrap()
            .next
    });
    assert_eq!(store.cache().family_stats(Family::Conversation).misses, 1);
}

/// A message that reaches the window after a newer one (two sends racing) is spliced in at
/// its place; one already there is not added twice.
#[tokio::test]
async fn a_message_arriving_late_is_spliced_in_at_its_place() {
    let (_db, store, u) = setup(live_cache(None)).await;
    let mut conn = _db.conn().await.unwrap();
    conversation(&mut conn, u, "hugo", 10).await;
    store
        .conversations()
        .page(u, "hugo", None, 50)
        .await
        .unwrap();
    let older = db_core::queries::messages::insert(
        &mut conn,
        &NewMessage::new(u, "hugo", Sender::User, "d'abord"),
    )
    .await
    .unwrap();
    let newer = db_core::queries::messages::insert(
        &mut conn,
        &NewMessage::new(u, "hugo", Sender::Character, "ensuite"),
    )
    .await
    .unwrap();
    for m in [&newer, &older, &older, &newer] {
        store.cache().testing_append_to_window(m).await;
    }
    let cached = store
        .conversations()
        .page(u, "hugo", None, 50)
        .await
        .unwrap();
    let fresh = conn_latest(&_db, u).await;
    assert_eq!(cached.items, fresh);
    assert_eq!(cached.items.len(), 12);
    assert_eq!(store.cache().family_stats(Family::Conversation).misses, 1);
}

async fn conn_latest(db: &TestDb, u: Uuid) -> Vec<db_core::models::Message> {
    let mut conn = db.conn().await.unwrap();
    db_core::queries::messages::latest(&mut conn, u, "hugo", None, 100)
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_hundred_concurrent_misses_load_once_across_two_replicas() {
    let config = db_test::redis_config();
    let (a, b) = (live_cache(Some(&config)), live_cache(Some(&config)));
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks = (0..100).map(|i| {
        let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .testing_get_or_load(
                    Family::UserProfile,
                    &cache.keys().user_profile(Uuid::nil()),
                    || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::convert::Infallible>("loaded once".to_owned())
                    },
                )
                .await
                .unwrap()
        })
    });
    for t in tasks {
        assert_eq!(t.await.unwrap(), "loaded once");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let total = |c: &Cache| {
        let s = c.family_stats(Family::UserProfile);
        (s.hits, s.misses)
    };
    let (ha, ma) = total(&a);
    let (hb, mb) = total(&b);
    assert_eq!((ha + hb, ma + mb), (99, 1));
}

#[tokio::test]
async fn with_redis_unreachable_every_path_serves_postgres() {
    let (db, store, u) = setup(dead_cache()).await;
    let first = store
        .conversations()
        .page(u, "sophia", None, 10)
        .await
        .unwrap();
    assert_eq!(first.items[0].content, "message 29");
    let sent = store
        .conversations()
        .send(&NewMessage::new(u, "sophia", Sender::User, "sans redis"))
        .await
        .unwrap()
        .into_message();
    assert_eq!(
        store
            .conversations()
            .page(u, "sophia", None, 1)
            .await
            .unwrap()
            .items[0],
        sent
    );
    assert_eq!(
        store.users().profile(u).await.unwrap().unwrap().email,
        "a@example.com"
    );
    store.users().update_display_name(u, "Bea").await.unwrap();
    assert_eq!(
        store
            .users()
            .profile(u)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Bea"
    );
    assert_eq!(store.matches().list(u).await.unwrap().len(), 2);
    assert_eq!(
        store.catalogue().all().await.unwrap().len(),
        db_core::seed::demo_characters().unwrap().len()
    );
    assert_eq!(
        store.catalogue().get("hugo").await.unwrap().unwrap().name,
        "Hugo"
    );
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        store.conversations().mark_read(u, "sophia").await.unwrap(),
        15
    );
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        0
    );
    assert_eq!(gallery(&store, u, "sophia", 10).await, Some(vec![]));
    assert_eq!(gallery(&store, u, "nobody-here", 10).await, None);
    assert_eq!(store.users().add_xp(u, 5).await.unwrap(), Some(5));
    assert_eq!(store.leaderboard().top(10).await.unwrap()[0].xp, 5);
    assert_eq!(store.leaderboard().rank(u).await.unwrap().unwrap().rank, 1);
    assert_eq!(store.conversations().typing(u, "sophia").await, None);
    store.users().warm(u, &store).await.unwrap();
    assert!(!store.cache().redis_healthy(), "the breaker opened");
    assert!(store.cache().breaker().opened_total() >= 1);
    assert!(store.cache().family_stats(Family::Conversation).bypassed >= 1);
    drop(db);
}

#[tokio::test]
async fn a_disabled_cache_serves_everything_from_postgres() {
    let (_db, store, u) = setup(Cache::disabled()).await;
    assert_eq!(
        store
            .conversations()
            .page(u, "sophia", None, 5)
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    store
        .conversations()
        .send(&NewMessage::new(u, "sophia", Sender::User, "x"))
        .await
        .unwrap();
    assert_eq!(
        store
            .conversations()
            .page(u, "sophia", None, 1)
            .await
            .unwrap()
            .items[0]
            .content,
        "x"
    );
    assert_eq!(store.matches().list(u).await.unwrap().len(), 2);
    assert_eq!(store.cache().family_stats(Family::Conversation).hits, 0);
}

#[tokio::test]
async fn the_leaderboard_is_rebuilt_when_missing_and_kept_exact() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let ids: Vec<Uuid> = {
        let mut v = Vec::new();
        for (i, xp) in [10, 50, 30, 50].iter().enumerate() {
            let id = crate::fixtures::user(&mut conn, &format!("u{i}@example.com")).await;
            db_core::queries::users::add_xp(&mut conn, id, *xp)
                .await
                .unwrap();
            v.push(id);
        }
        v
    };
    let store = Store::new(db.db(), live_cache(None));
    let top = store.leaderboard().top(3).await.unwrap();
    assert_eq!(
        top.iter().map(|e| e.xp).collect::<Vec<_>>(),
        vec![50, 50, 30]
    );
    assert_eq!(
        hits(store.cache(), Family::Leaderboard),
        (0, 1),
        "rebuilt once"
    );
    assert_eq!(
        store
            .leaderboard()
            .rank(ids[2])
            .await
            .unwrap()
            .unwrap()
            .rank,
        3
    );
    assert_eq!(
        store
            .leaderboard()
            .rank(ids[1])
            .await
            .unwrap()
            .unwrap()
            .rank,
        1
    );
    store.users().add_xp(ids[0], 100).await.unwrap();
    assert_eq!(store.leaderboard().top(1).await.unwrap()[0].user_id, ids[0]);
    assert_eq!(
        store.leaderboard().rank(ids[0]).await.unwrap().unwrap(),
        db_core::queries::users::Rank { xp: 110, rank: 1 }
    );
    assert_eq!(
        store
            .leaderboard()
            .rank(ids[1])
            .await
            .unwrap()
            .unwrap()
            .rank,
        2
    );
    let (h, m) = hits(store.cache(), Family::Leaderboard);
    assert_eq!(m, 1);
    assert!(h >= 5);
}

#[tokio::test]
async fn a_catalogue_change_reaches_every_replica_through_pub_sub() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    db_core::queries::characters::upsert(&mut conn, &db_core::seed::demo_characters().unwrap())
        .await
        .unwrap();
    let config = db_test::redis_config();
    let (a, b) = (
        Store::new(db.db(), live_cache(Some(&config))),
        Store::new(db.db(), live_cache(Some(&config))),
    );
    let _listening = (
        a.cache().spawn_invalidation_listener().unwrap(),
        b.cache().spawn_invalidation_listener().unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        b.catalogue().get("sophia").await.unwrap().unwrap().name,
        "Sophia"
    );
    b.catalogue().all().await.unwrap();
    let mut renamed = (*a.catalogue().get("sophia").await.unwrap().unwrap()).clone();
    renamed.name = "Sophia R.".into();
    a.catalogue().upsert(&[renamed]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let seen = b
            .catalogue()
            .get("sophia")
            .await
            .unwrap()
            .unwrap()
            .name
            .clone();
        let listed = b
            .catalogue()
            .all()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == "Sophia R.");
        if seen == "Sophia R." && listed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica b still serves {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn login_warming_fills_profile_matches_and_recent_windows() {
    let (_db, store, u) = setup(live_cache(None)).await;
    store.users().warm(u, &store).await.unwrap();
    store.users().profile(u).await.unwrap();
    store.matches().list(u).await.unwrap();
    store
        .conversations()
        .page(u, "sophia", None, 50)
        .await
        .unwrap();
    assert_eq!(hits(store.cache(), Family::UserProfile), (1, 1));
    assert_eq!(hits(store.cache(), Family::MatchList), (1, 1));
    assert_eq!(hits(store.cache(), Family::Conversation), (1, 1));
}

#[tokio::test]
async fn family_invalidation_scans_instead_of_keys() {
    let (_db, store, u) = setup(live_cache(None)).await;
    store
        .conversations()
        .page(u, "sophia", None, 5)
        .await
        .unwrap();
    store
        .conversations()
        .page(u, "hugo", None, 5)
        .await
        .unwrap();
    let gone = store
        .cache()
        .delete_matching(&store.cache().keys().conversations_of(u))
        .await;
    assert_eq!(gone, 2);
    store
        .conversations()
        .page(u, "sophia", None, 5)
        .await
        .unwrap();
    assert_eq!(store.cache().family_stats(Family::Conversation).misses, 3);
}

#[test]
fn no_keys_command_anywhere_in_the_code() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut stack = vec![std::path::PathBuf::from(root)];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                !text.contains("cmd(\"KEYS\")") && !text.contains("'KEYS'"),
                "{} sends KEYS",
                p.display()
            );
        }
    }
}

/// A send that lands while a reader is loading the window from PostgreSQL: the reader's
/// (older) window must not be stored, or the new message would vanish from the cache.
#[tokio::test]
async fn a_window_loaded_before_a_send_is_not_stored() {
    let (db, store, u) = setup(live_cache(None)).await;
    let stale = store
        .cache()
        .testing_conversation_window(u, "sophia", || async {
            let mut conn = db.conn().await.unwrap();
            let before = db_core::queries::messages::latest(&mut conn, u, "sophia", None, 100)
                .await
                .unwrap()
                .items;
            store
                .conversations()
                .send(&NewMessage::new(
                    u,
                    "sophia",
                    Sender::User,
                    "pendant le chargement",
                ))
                .await
                .unwrap();
            Ok::<_, std::convert::Infallible>(before)
        })
        .await
        .unwrap();
    assert_eq!(stale.messages(1)[0].content, "message 29");
    let now = store
        .conversations()
        .page(u, "sophia", None, 100)
        .await
        .unwrap();
    assert_eq!(now.items[0].content, "pendant le chargement");
    assert_eq!(
        store.cache().family_stats(Family::Conversation).misses,
        2,
        "the stale load was not cached"
    );
}

/// The guide's mix on the seeded dataset, users drawn with a Zipf skew (s = 1.1). Sends
/// update the cached window and match list in place, so the only misses are first visits:
/// every read of a key seen before is a hit.
#[tokio::test]
async fn in_the_realistic_mix_only_first_visits_miss() {
    use std::collections::HashSet;

    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Pair {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        user_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        character_id: String,
    }

    let db = TestDb::seeded().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let pairs: Vec<Pair> = diesel::sql_query(
        "SELECT user_id, character_id FROM matches ORDER BY user_id, character_id",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut users: Vec<(Uuid, Vec<String>)> = Vec::new();
    for p in pairs {
        match users.last_mut() {
            Some((u, cs)) if *u == p.user_id => cs.push(p.character_id),
            _ => users.push((p.user_id, vec![p.character_id])),
        }
    }
    // Zipf(1.1) over the users, and a fixed-seed xorshift: the same run every time.
    let weights: Vec<f64> = (1..=users.len())
        .map(|k| 1.0 / (k as f64).powf(1.1))
        .collect();
    let total: f64 = weights.iter().sum();
    let cdf: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let store = Store::new(db.db(), live_cache(None));
    let mut first_visits = 0;
    let mut seen = HashSet::new();
    let mut reads = 0;
    // A gallery read that misses checks the match on the user's list, loading the list if it
    // is not cached: a count of its family that is no read of its own.
    let mut checks = 0;
    for i in 0..4_000 {
        let r = next();
        let user = cdf.iter().position(|c| r <= *c).unwrap_or(users.len() - 1);
        let (u, characters) = &users[user];
        let c = &characters[(next() * characters.len() as f64) as usize % characters.len()];
        let (kind, key) = match next() {
            x if x < 0.5 => ("conversation", c.as_str()),
            x if x < 0.7 => ("matches", ""),
            x if x < 0.9 => ("photos", c.as_str()),
            _ => ("send", c.as_str()),
        };
        if kind != "send" {
            reads += 1;
            if kind == "photos" && !seen.contains(&(kind, *u, key.to_owned())) {
                checks += 1;
                // The list is loaded for the check if it was not cached (a miss): the user's
                // first matches read is then a hit.
                if seen.insert(("matches", *u, String::new())) {
                    first_visits += 1;
                }
            }
            if seen.insert((kind, *u, key.to_owned())) {
                first_visits += 1;
            }
        }
        match kind {
            "conversation" => drop(store.conversations().page(*u, c, None, 100).await.unwrap()),
            "matches" => drop(store.matches().list(*u).await.unwrap()),
            "photos" => drop(gallery(&store, *u, c, 20).await),
            _ => drop(
                store
                    .conversations()
                    .send(&NewMessage::new(
                        *u,
                        c.as_str(),
                        Sender::User,
                        format!("mix {i}"),
                    ))
                    .await
                    .unwrap(),
            ),
        }
    }
    let families = [Family::Conversation, Family::MatchList, Family::PhotoPage];
    let (h, m) = families
        .iter()
        .map(|f| hits(store.cache(), *f))
        .fold((0, 0), |(h, m), (a, b)| (h + a, m + b));
    println!(
        "{reads} reads: {h} hits, {m} misses ({first_visits} first visits); hit rate {:.1}%, {:.1}% of repeat visits",
        h as f64 * 100.0 / reads as f64,
        h as f64 * 100.0 / (reads - first_visits) as f64
    );
    assert_eq!(h + m, reads + checks);
    assert_eq!(
        m, first_visits,
        "a key read before was read again from the cache"
    );
}

/// A replica that cannot reach Redis writes: the keys it could not update are journaled in
/// PostgreSQL, and a replica that can reach Redis drops them at once, so that nobody goes on
/// serving what the write made stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_from_redis_is_not_followed_by_stale_reads_elsewhere() {
    let config = db_test::redis_config();
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let u = matched_user(&mut conn, "a@example.com", &["sophia"]).await;
    conversation(&mut conn, u, "sophia", 4).await;
    let healthy = Store::new(db.db(), live_cache(Some(&config)));
    let _replay = healthy.spawn_background();
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        RedisConfig {
            url: format!("redis://127.0.0.1:{port}"),
            ..config.clone()
        }
    };
    let cut_off = Store::new(db.db(), Cache::new(RedisPool::new(&dead).unwrap()));
    // The healthy replica caches the window and the match list.
    let before = healthy
        .conversations()
        .page(u, "sophia", None, 10)
        .await
        .unwrap();
    healthy.matches().list(u).await.unwrap();
    assert_eq!(before.items.len(), 4);
    // The cut-off replica takes a message: stored, but it cannot touch the cache.
    let sent = cut_off
        .conversations()
        .send(&NewMessage::new(
            u,
            "sophia",
            Sender::User,
            "Tu m'entends ?",
        ))
        .await
        .unwrap()
        .into_message();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let page = healthy
            .conversations()
            .page(u, "sophia", None, 10)
            .await
            .unwrap();
        let list = healthy.matches().list(u).await.unwrap();
        if page.items[0].id == sent.id && list[0].last_message_id == Some(sent.id) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the healthy replica still serves the old window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A send whose process died after the commit and before the cache updates, retried by the
/// client with the same `client_id`: the retry finds the message stored and repairs what the
/// first attempt never updated, so no reader misses the message until a TTL.
#[tokio::test]
async fn a_retried_send_repairs_the_caches_its_first_attempt_never_updated() {
    let (db, store, u) = setup(live_cache(None)).await;
    let window = |store: Store| async move {
        store
            .conversations()
            .page(u, "sophia", None, 5)
            .await
            .unwrap()
            .items
    };
    let before = window(store.clone()).await;
    let listed = store.matches().list(u).await.unwrap();
    // Cached now. The first attempt: committed straight to PostgreSQL, caches untouched.
    let mut first = NewMessage::new(u, "sophia", Sender::User, "tu es là ?");
    first.client_id = Some(Uuid::new_v4());
    let mut conn = db.conn().await.unwrap();
    let stored = db_core::queries::messages::insert_idempotent(&mut conn, &first)
        .await
        .unwrap()
        .message()
        .clone();
    assert_eq!(window(store.clone()).await, before, "the cache missed it");
    let retried = store.conversations().send(&first).await.unwrap();
    assert!(matches!(retried, db_core::store::Inserted::Existing(_)));
    assert_eq!(window(store.clone()).await[0].id, stored.id);
    let after = store.matches().list(u).await.unwrap();
    let sophia = |l: &[db_core::queries::matches::MatchSummary]| {
        l.iter()
            .find(|m| m.character_id == "sophia")
            .unwrap()
            .last_message_id
    };
    assert_ne!(sophia(&listed), Some(stored.id));
    assert_eq!(sophia(&after), Some(stored.id));
}

/// A send's cache updates go in one round trip; after Redis lost its scripts (a restart, a
/// `SCRIPT FLUSH`) they are loaded again and the caches still change in place, not dropped.
#[tokio::test]
async fn a_send_updates_window_unread_and_match_list_in_place_after_redis_forgot_its_scripts() {
    let (_db, store, u) = setup(live_cache(None)).await;
    let c = &store.cache();
    store
        .conversations()
        .page(u, "sophia", None, 20)
        .await
        .unwrap();
    let unread = store
        .conversations()
        .unread_count(u, "sophia")
        .await
        .unwrap();
    store.matches().list(u).await.unwrap();
    let (page_misses, unread_misses, list_misses) = (
        c.family_stats(Family::Conversation).misses,
        c.family_stats(Family::Unread).misses,
        c.family_stats(Family::MatchList).misses,
    );
    let mut redis = redis::Client::open(db_test::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .unwrap();
    let sent = store
        .conversations()
        .send(&NewMessage::new(
            u,
            "sophia",
            Sender::Character,
            "te revoilà",
        ))
        .await
        .unwrap()
        .into_message();
    let page = store
        .conversations()
        .page(u, "sophia", None, 20)
        .await
        .unwrap();
    assert_eq!(page.items[0], sent);
    assert_eq!(
        store
            .conversations()
            .unread_count(u, "sophia")
            .await
            .unwrap(),
        unread + 1
    );
    let listed = store.matches().list(u).await.unwrap();
    let sophia = listed.iter().find(|m| m.character_id == "sophia").unwrap();
    assert_eq!(sophia.last_message_id, Some(sent.id));
    assert_eq!(
        (
            c.family_stats(Family::Conversation).misses,
            c.family_stats(Family::Unread).misses,
            c.family_stats(Family::MatchList).misses,
        ),
        (page_misses, unread_misses, list_misses),
        "each updated in place, none dropped and loaded again"
    );
}

/// The content of the newest message of a conversation page's body.
fn newest(body: &[u8]) -> String {
    let page: serde_json::Value = serde_json::from_slice(body).unwrap();
    page["items"][0]["content"].as_str().unwrap().to_owned()
}

/// Windows and match lists stored together (a cold cache filling under load) expire apart:
/// each key lives its TTL ±10 %, the same on every store of it and every send appended to it.
#[tokio::test]
async fn windows_and_match_lists_stored_together_expire_apart() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(matched_user(&mut conn, &format!("u{i}@example.com"), &["sophia"]).await);
    }
    let store = Store::new(db.db(), live_cache(None));
    let c = store.cache();
    let redis = c.redis_pool().unwrap();
    let pttl = async |key: String| -> i64 {
        let mut cmd = redis::cmd("PTTL");
        cmd.arg(key);
        redis.query::<i64>(&cmd).await.unwrap()
    };
    let (mut windows, mut lists) = (Vec::new(), Vec::new());
    for &u in &users {
        store
            .conversations()
            .page_body(u, "sophia", None, 20)
            .await
            .unwrap()
            .unwrap();
        store.matches().list(u).await.unwrap();
        windows.push(pttl(c.keys().conversation(u, "sophia")).await);
        lists.push(pttl(c.keys().match_list(u)).await);
    }
    for (ttls, family) in [
        (&windows, Family::Conversation),
        (&lists, Family::MatchList),
    ] {
        let nominal = c.ttl(family).unwrap().as_millis() as i64;
        assert!(
            ttls.iter()
                .all(|&ms| (nominal * 9 / 10 - 5_000..=nominal * 11 / 10).contains(&ms)),
            "{ttls:?}"
        );
        let spread = ttls.iter().max().unwrap() - ttls.iter().min().unwrap();
        assert!(
            spread > 5_000,
            "stored together, expiring together: {ttls:?}"
        );
    }
    // A send keeps its window's own lifetime rather than resetting it to the nominal one.
    let u = users[0];
    store
        .conversations()
        .send(&NewMessage::new(
            u,
            "sophia",
            Sender::User,
            "bonjour".to_owned(),
        ))
        .await
        .unwrap();
    let after = pttl(c.keys().conversation(u, "sophia")).await;
    assert!(
        (windows[0] - after).abs() < 5_000,
        "{} then {after}",
        windows[0]
    );
}

#[tokio::test]
async fn a_window_read_in_the_last_quarter_of_its_life_is_loaded_again_behind_the_read() {
    let (db, store, u) = setup(live_cache(None)).await;
    let c = store.cache();
    let redis = c.redis_pool().unwrap();
    let key = c.keys().conversation(u, "sophia");
    let read = async || {
        store
            .conversations()
            .page_body(u, "sophia", None, 20)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(newest(&read().await), "message 29");
    // A message written around the cache: only a load from PostgreSQL shows it.
    let mut conn = db.conn().await.unwrap();
    let around = NewMessage::new(
        u,
        "sophia",
        Sender::Character,
        "around the cache".to_owned(),
    );
    db_core::queries::messages::insert(&mut conn, &around)
        .await
        .unwrap();

    // A young window is served as stored, and left alone.
    assert_eq!(newest(&read().await), "message 29");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        newest(&read().await),
        "message 29",
        "a young window was loaded again"
    );

    // In the last quarter of its lifetime (300 s): served as stored, a hit, and loaded again
    // behind it.
    let mut age = redis::cmd("PEXPIRE");
    age.arg(&key).arg(60_000);
    assert_eq!(redis.query::<i64>(&age).await.unwrap(), 1);
    assert_eq!(newest(&read().await), "message 29");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while newest(&read().await) != "around the cache" {
        assert!(tokio::time::Instant::now() < deadline, "never loaded again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ttl = redis::cmd("PTTL");
    ttl.arg(&key);
    let left = redis.query::<i64>(&ttl).await.unwrap();
    assert!(
        left > 250_000,
        "stored for a whole lifetime again, not {left} ms"
    );
    assert_eq!(
        hits(c, Family::Conversation).1,
        1,
        "only the very first read missed"
    );
}
