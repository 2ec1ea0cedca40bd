//! Characters of one's own: only their owner sees, matches or edits them; the public catalogue
//! (and its shared cache) never holds them; deleting one, or its owner, takes everything of it.

use db_core::models::{CharacterChanges, CharacterDraft, NewPhoto};
use db_core::store::CreateCharacterError;
use db_core::{Cache, RedisPool, Store};
use db_test::TestDb;

use crate::fixtures::{conversation, matched_user, scalar, user};

fn draft(name: &str) -> CharacterDraft {
    CharacterDraft {
        name: name.to_owned(),
        tagline: "a test".to_owned(),
        persona: format!("You are {name}."),
        greeting: format!("Hello, I am {name}."),
        tags: vec!["test".to_owned()],
        example_dialogue: "{{user}}: hi\n{{char}}: hello".to_owned(),
        card_extras: serde_json::json!({"scenario": "a café"}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn own_characters_are_their_owners_alone() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let alice = matched_user(&mut conn, "alice@example.com", &["sophia"]).await;
    let bob = user(&mut conn, "bob@example.com").await;
    let store = Store::new(
        db.db(),
        Cache::new(RedisPool::new(&db_test::redis_config()).unwrap()),
    );
    let public = store.catalogue().all().await.unwrap().len();

    let mira = store
        .characters()
        .create(alice, &draft("Mira Moon"))
        .await
        .unwrap();
    assert!(mira.id.starts_with("mira-moon-"), "{}", mira.id);
    assert_eq!(mira.owner_id, Some(alice));
    // The catalogue (cached and shared) never lists it; its owner sees it, nobody else does.
    assert_eq!(store.catalogue().all().await.unwrap().len(), public);
    assert!(store.catalogue().get(&mira.id).await.unwrap().is_none());
    assert_eq!(
        store
            .characters()
            .visible(alice, &mira.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Mira Moon"
    );
    assert!(
        store
            .characters()
            .visible(bob, &mira.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .characters()
            .visible(bob, "sophia")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.characters().owned_by(bob).await.unwrap().len(), 0);
    assert_eq!(store.characters().owned_by(alice).await.unwrap().len(), 1);
    // The model is told the scenario and the example dialogue.
    let persona = mira.prompt_persona();
    assert!(persona.contains("Scenario: a café") && persona.contains("{{char}}: hello"));

    // Bob can neither match with it, nor edit, re-avatar or delete it.
    assert!(matches!(
        store.matches().create(bob, &mira.id).await,
        Err(db_core::store::MatchError::UnknownCharacter)
    ));
    let rename = CharacterChanges {
        name: Some("Stolen".into()),
        ..Default::default()
    };
    assert!(
        store
            .characters()
            .update(bob, &mira.id, &rename)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .characters()
            .set_avatar(bob, &mira.id, Some("x"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .characters()
            .delete(bob, &mira.id)
            .await
            .unwrap()
            .is_none()
    );
    // A catalogue reload with the same id does not take it over.
    let mut clash = (*store.catalogue().get("sophia").await.unwrap().unwrap()).clone();
    clash.id = mira.id.clone();
    store.catalogue().upsert(&[clash]).await.unwrap();
    let again = store
        .characters()
        .get_owned(alice, &mira.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.name.as_str(), again.owner_id),
        ("Mira Moon", Some(alice))
    );

    // Alice matches, chats, gets a photo; then deletes it: everything of it goes.
    let renamed = store
        .characters()
        .update(alice, &mira.id, &rename)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "Stolen");
    assert_eq!(renamed.persona, "You are Mira Moon.");
    store.matches().create(alice, &mira.id).await.unwrap();
    conversation(&mut conn, alice, &mira.id, 4).await;
    db_core::queries::photos::insert(
        &mut conn,
        &NewPhoto {
            user_id: alice,
            character_id: mira.id.clone(),
            storage_key: "photos/x.png".into(),
            content_type: "image/png".into(),
            width: 1,
            height: 1,
            prompt: None,
        },
    )
    .await
    .unwrap();
    store
        .characters()
        .set_avatar(alice, &mira.id, Some("avatars/a.png"))
        .await
        .unwrap();
    let (_, old) = store
        .characters()
        .set_avatar(alice, &mira.id, Some("avatars/b.png"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.as_deref(), Some("avatars/a.png"));
    assert_eq!(store.matches().list(alice).await.unwrap().len(), 2);
    let gone = store
        .characters()
        .delete(alice, &mira.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.avatar_key.as_deref(), Some("avatars/b.png"));
    assert_eq!(gone.photo_keys, vec!["photos/x.png".to_owned()]);
    assert_eq!(
        store.matches().list(alice).await.unwrap().len(),
        1,
        "the cached list was dropped"
    );
    let left = |t: &str| {
        format!(
            "SELECT count(*) FROM {t} WHERE character_id = '{}'",
            mira.id
        )
    };
    for t in ["matches", "chat_messages", "received_photos"] {
        assert_eq!(scalar(&mut conn, &left(t)).await, "0", "{t}");
    }

    // Deleting the account deletes its characters, matched or not.
    let kept = store
        .characters()
        .create(alice, &draft("Kept"))
        .await
        .unwrap();
    store.matches().create(alice, &kept.id).await.unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!("DELETE FROM users WHERE id = '{alice}'")),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM characters WHERE owner_id IS NOT NULL"
        )
        .await,
        "0"
    );
    assert_eq!(store.catalogue().all().await.unwrap().len(), public);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_user_has_a_bounded_number_of_characters_even_under_races() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let alice = user(&mut conn, "alice@example.com").await;
    let store = Store::new(db.db(), Cache::disabled());
    let max = db_core::store::MAX_OWN_CHARACTERS as usize;
    let mut tasks = Vec::new();
    for i in 0..max + 10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .characters()
                .create(alice, &draft(&format!("C{i}")))
                .await
        }));
    }
    let (mut made, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => made += 1,
            Err(CreateCharacterError::TooMany(_)) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((made, refused), (max, 10));
}

/// Renaming one's own character shows in one's match list at once, not after its cache expires.
#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_character_is_renamed_in_the_cached_match_list() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let alice = matched_user(&mut conn, "alice@example.com", &["sophia"]).await;
    let store = Store::new(
        db.db(),
        Cache::new(RedisPool::new(&db_test::redis_config()).unwrap()),
    );
    let mira = store
        .characters()
        .create(alice, &draft("Mira Moon"))
        .await
        .unwrap();
    store.matches().create(alice, &mira.id).await.unwrap();
    let name_listed = async || {
        store
            .matches()
            .list(alice)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.character_id == mira.id)
            .unwrap()
            .character_name
    };
    assert_eq!(name_listed().await, "Mira Moon");
    assert_eq!(name_listed().await, "Mira Moon", "now from the cache");
    let renamed = CharacterChanges {
        name: Some("Mira Soleil".to_owned()),
        ..Default::default()
    };
    store
        .characters()
        .update(alice, &mira.id, &renamed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name_listed().await, "Mira Soleil");
    // Another edit leaves the list cached.
    let hits = store
        .cache()
        .family_stats(db_core::cache::Family::MatchList)
        .hits;
    let retold = CharacterChanges {
        tagline: Some("another line".to_owned()),
        ..Default::default()
    };
    store
        .characters()
        .update(alice, &mira.id, &retold)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(name_listed().await, "Mira Soleil");
    assert_eq!(
        store
            .cache()
            .family_stats(db_core::cache::Family::MatchList)
            .hits,
        hits + 1
    );
}
