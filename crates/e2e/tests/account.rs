//! An account that is the person's, through the gateway with every process real: a new
//! password ends every other session, logging out everywhere ends them all, the export holds
//! everything (and only the caller's), and a deleted account leaves nothing in PostgreSQL,
//! Redis or storage. Each exchange is printed (`--no-capture`) for the closing note.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use e2e::{Options, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A request through the gateway, printed with its answer.
async fn call(
    s: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let shown = body.as_ref().map(|b| {
        let mut b = b.clone();
        for secret in ["password", "current_password", "new_password"] {
            if b.get(secret).is_some() {
                b[secret] = json!("…");
            }
        }
        if let Some(t) = b.get("refresh_token").and_then(Value::as_str) {
            b["refresh_token"] = json!(format!("{}…", &t[..12]));
        }
        format!(" {b}")
    });
    let (status, answer) = s.call(method.clone(), path, token, body).await;
    let mut text = answer.to_string();
    for token_field in ["access_token", "refresh_token"] {
        if let Some(t) = answer.get(token_field).and_then(Value::as_str) {
            text = text.replace(t, &format!("{}…", &t[..12]));
        }
    }
    if text.len() > 400 {
        text = format!("{}…", &text[..400]);
    }
    println!(
        "> {method} {path}{}\n< {status} {text}",
        shown.unwrap_or_default()
    );
    (status, answer)
}

fn bearer(v: &Value) -> String {
    v["access_token"].as_str().unwrap().to_owned()
}

async fn login(s: &Stack, email: &str, password: &str) -> (StatusCode, Value) {
    call(
        s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

/// Whether a token is refused by `base` (the gateway, or a service reached directly).
async fn refused(s: &Stack, base: &str, path: &str, token: &str) -> bool {
    // The ai service's one route is a POST (refused before anything is read).
    let method = if path.ends_with("/reply") {
        Method::POST
    } else {
        Method::GET
    };
    s.http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        == StatusCode::UNAUTHORIZED
}

/// Waits (at most 5 s) until every process refuses `token`; how long that took.
async fn refused_everywhere(s: &Stack, token: &str) -> Duration {
    let started = Instant::now();
    let places = [
        (s.gateway.clone(), "/api/v1/users/me"),
        (s.auth.url(), "/api/v1/users/me"),
        (s.chat[0].url(), "/api/v1/matches"),
        (s.chat[1].url(), "/api/v1/matches"),
        (s.media.url(), "/api/v1/photos/sophia"),
        (s.ai.url(), "/api/v1/conversations/sophia/reply"),
    ];
    for (base, path) in &places {
        while !refused(s, base, path, token).await {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{base}{path} still takes the token"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_ends_every_other_session_and_logging_out_everywhere_ends_them_all() {
    let s = Stack::start().await;
    println!("── change password, log out everywhere ──");
    let email = "lea@example.com";
    let first = s.sign_up(email).await;
    let (_, second) = login(&s, email, "un mot de passe").await;
    let me = bearer(&first);

    // Bad input first: nothing changes.
    let path = "/api/v1/users/me/password";
    let (status, p) = call(
        &s,
        Method::PUT,
        path,
        Some(&me),
        Some(
            json!({ "current_password": "pas le bon", "new_password": "un nouveau mot de passe" }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    assert_eq!(p["code"], "invalid_credentials");
    let (status, p) = call(
        &s,
        Method::PUT,
        path,
        Some(&me),
        Some(json!({ "current_password": "un mot de passe", "new_password": "court" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["field"], "new_password");
    let (status, p) = call(
        &s,
        Method::PUT,
        path,
        Some(&me),
        Some(json!({ "current_password": "un mot de passe", "new_password": "un mot de passe" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["field"], "new_password", "the same password again");
    let (status, _) = call(
        &s,
        Method::PUT,
        path,
        Some(&me),
        Some(json!({ "current_password": "un mot de passe" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "new_password missing");
    let (status, _) = call(
        &s,
        Method::PUT,
        path,
        None,
        Some(json!({ "current_password": "un mot de passe", "new_password": "un nouveau mot de passe" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!refused(&s, &s.gateway, "/api/v1/users/me", &bearer(&second)).await);

    // The change: every earlier session ends, this one gets fresh tokens.
    let (status, fresh) = call(
        &s,
        Method::PUT,
        path,
        Some(&me),
        Some(json!({ "current_password": "un mot de passe", "new_password": "un nouveau mot de passe" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    for old in [&first, &second] {
        let took = refused_everywhere(&s, &bearer(old)).await;
        println!(
            "  an earlier session's access token refused by all 6 processes (gateway, auth, chat ×2, media, ai) after {took:?}"
        );
        let (status, _) = call(
            &s,
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": old["refresh_token"] })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "its refresh token too");
    }
    let (status, profile) = call(
        &s,
        Method::GET,
        "/api/v1/users/me",
        Some(&bearer(&fresh)),
        None,
    )
    .await;
    assert_eq!(
        (status, profile["email"].as_str()),
        (StatusCode::OK, Some(email))
    );
    let (status, _) = login(&s, email, "un mot de passe").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password is gone");
    let (status, other_device) = login(&s, email, "un nouveau mot de passe").await;
    assert_eq!(status, StatusCode::OK);

    // Log out everywhere: both live sessions end, this one included.
    let (status, _) = call(
        &s,
        Method::POST,
        "/api/v1/auth/logout-everywhere",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, out) = call(
        &s,
        Method::POST,
        "/api/v1/auth/logout-everywhere",
        Some(&bearer(&fresh)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["sessions_ended"], 2, "{out}");
    for t in [&fresh, &other_device] {
        let took = refused_everywhere(&s, &bearer(t)).await;
        println!(
            "  logged out everywhere: refused by all 6 processes (gateway, auth, chat ×2, media, ai) after {took:?}"
        );
        let (status, _) = call(
            &s,
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": t["refresh_token"] })),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = login(&s, email, "un nouveau mot de passe").await;
    assert_eq!(status, StatusCode::OK, "signing in again works");
}

async fn wait_photo(s: &Stack, token: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, j) = s.get(&format!("/api/v1/photos/jobs/{job}"), token).await;
        if status == StatusCode::OK && j["status"] == "done" {
            return j;
        }
        assert!(Instant::now() < deadline, "job {job}: {status} {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user with a bit of everything: two matches, messages, a reply (XP, affection, a
/// memory), a photo and one of its renditions. The photo's id.
async fn lived_in(s: &Stack, token: &str) -> i64 {
    for c in ["sophia", "hugo"] {
        let (status, _) = call(
            s,
            Method::POST,
            "/api/v1/matches",
            Some(token),
            Some(json!({ "character_id": c })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    for text in [
        "Bonjour Sophia !",
        "Je m'appelle Léa et j'aime la photographie.",
    ] {
        call(
            s,
            Method::POST,
            "/api/v1/conversations/sophia/messages",
            Some(token),
            Some(json!({ "content": text })),
        )
        .await;
    }
    let (status, reply) = call(
        s,
        Method::POST,
        "/api/v1/conversations/sophia/reply",
        Some(token),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    call(
        s,
        Method::POST,
        "/api/v1/conversations/hugo/messages",
        Some(token),
        Some(json!({ "content": "Salut Hugo" })),
    )
    .await;
    let (status, job) = call(
        s,
        Method::POST,
        "/api/v1/photos/sophia/generate",
        Some(token),
        Some(json!({ "prompt": "un café sur les quais" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = wait_photo(s, token, job["id"].as_str().unwrap()).await;
    let id = done["photo"]["id"].as_i64().unwrap();
    let res = s
        .http
        .get(format!("{}/api/v1/media/{id}?w=128", s.gateway))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a rendition is made and stored"
    );
    id
}

async fn export(s: &Stack, token: &str) -> reqwest::Response {
    s.http
        .get(format!("{}/api/v1/users/me/export", s.gateway))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_everything_of_the_caller_and_nothing_else() {
    let s = Stack::start().await;
    println!("── export ──");
    let lea = s.account("lea@example.com").await;
    let photo = lived_in(&s, &lea).await;
    let hugo = s.matched("hugo@example.com", "sophia").await;
    s.post(
        "/api/v1/conversations/sophia/messages",
        Some(&hugo),
        json!({ "content": "Un secret de Hugo" }),
    )
    .await;

    let res = export(&s, &lea).await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "application/zip");
    let disposition = headers["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"dream-export-"),
        "{disposition}"
    );
    let bytes = res.bytes().await.unwrap();
    let files = unzip(&bytes);
    println!(
        "> GET /api/v1/users/me/export\n< 200 application/zip, {disposition}, {} bytes:",
        bytes.len()
    );
    for (name, data) in &files {
        println!("    {name:<32} {:>7} bytes", data.len());
    }
    let text = |name: &str| String::from_utf8(files[name].clone()).unwrap();
    let json_of = |name: &str| serde_json::from_slice::<Value>(&files[name]).unwrap();
    assert_eq!(json_of("profile.json")["email"], "lea@example.com");
    assert!(json_of("profile.json")["xp"].as_i64().unwrap() > 0);
    let matches = json_of("matches.json");
    assert_eq!(matches.as_array().unwrap().len(), 2, "{matches}");

    // Every message, as the API lists them.
    for c in ["sophia", "hugo"] {
        let (_, page) = s
            .get(
                &format!("/api/v1/conversations/{c}/messages?limit=100"),
                &lea,
            )
            .await;
        let api: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        let exported: Vec<i64> = json_of(&format!("conversations/{c}.json"))
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        assert_eq!(exported, api, "{c}: every message, oldest first");
        let md = text(&format!("conversations/{c}.md"));
        for m in page["items"].as_array().unwrap() {
            assert!(md.contains(m["content"].as_str().unwrap()), "{c}.md: {md}");
        }
    }
    let md = text("conversations/sophia.md");
    assert!(
        md.contains("**Léa** · ") && md.contains("Je m'appelle Léa"),
        "{md}"
    );
    assert!(
        md.contains(&format!("![photo](../photos/sophia/{photo}.")),
        "{md}"
    );

    let (_, mems) = s.get("/api/v1/memories?character_id=sophia", &lea).await;
    let exported = json_of("memories.json");
    assert_eq!(
        exported.as_array().unwrap().len(),
        mems["items"].as_array().map_or(0, Vec::len),
        "{exported} vs {mems}"
    );
    assert!(
        !exported.as_array().unwrap().is_empty(),
        "the reply left a memory"
    );

    // The photo, byte for byte as downloaded.
    let photos = json_of("photos.json");
    let file = photos[0]["file"].as_str().unwrap();
    let original = s
        .http
        .get(format!("{}/api/v1/media/{photo}", s.gateway))
        .bearer_auth(&lea)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(files[file], original.to_vec());
    assert!(
        text("README.md").contains("2 matches"),
        "{}",
        text("README.md")
    );

    // Nothing of anyone else's.
    let all: String = files
        .values()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(!all.contains("Un secret de Hugo") && !all.contains("hugo@example.com"));
    let hugo_files = unzip(&export(&s, &hugo).await.bytes().await.unwrap());
    let hugo_all: String = hugo_files
        .values()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(!hugo_all.contains("Je m'appelle Léa") && !hugo_all.contains("lea@example.com"));
    assert!(!hugo_files.keys().any(|k| k.starts_with("photos/sophia/")));

    println!("README.md:\n{}", text("README.md"));
    println!(
        "conversations/sophia.md:\n{}",
        text("conversations/sophia.md")
    );

    // A long conversation streams through in bounded memory: 20,000 more messages (about
    // 9 MB of JSON and Markdown), the media service's resident memory sampled meanwhile.
    let lea_id = json_of("profile.json")["id"].as_str().unwrap().to_owned();
    let mut conn = s.conn().await;
    diesel::sql_query(
        "INSERT INTO chat_messages (user_id, character_id, sender, content, is_read, created_at) \
         SELECT $1::uuid, 'hugo', 'user', 'Message ' || g || ' : ' || repeat('la mer, le vent, ', 12), \
                true, now() + g * interval '1 millisecond' \
         FROM generate_series(1, 20000) g",
    )
    .bind::<Text, _>(&lea_id)
    .execute(&mut conn)
    .await
    .unwrap();
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let pid = s.media.pid();
    let idle = rss(pid);
    let started = Instant::now();
    let mut res = export(&s, &lea).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (mut bytes, mut peak) = (Vec::new(), idle);
    while let Some(chunk) = res.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
        peak = peak.max(rss(pid));
    }
    let big = unzip(&bytes);
    let messages = serde_json::from_slice::<Value>(&big["conversations/hugo.json"])
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(messages, 20_002, "20,001 sent and the greeting");
    let unpacked: usize = big.values().map(Vec::len).sum();
    println!(
        "a long export: {messages} messages, {} bytes unpacked, {} bytes as zip, in {:?}; \
         media resident {} kB before, {} kB at most while streaming (+{} kB)",
        unpacked,
        bytes.len(),
        started.elapsed(),
        idle,
        peak,
        peak.saturating_sub(idle)
    );

    // Owner-only and rate-limited.
    let (status, _) = call(&s, Method::GET, "/api/v1/users/me/export", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for _ in 0..3 {
        assert_eq!(export(&s, &lea).await.status(), StatusCode::OK);
    }
    let (status, p) = call(&s, Method::GET, "/api/v1/users/me/export", Some(&lea), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{p}");
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows of every table of the database that mention the user's id or email anywhere (the
/// whole row as text: any column, any type).
async fn rows_naming(s: &Stack, user: &str, email: &str) -> BTreeMap<String, i64> {
    let mut conn = s.conn().await;
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
           AND table_name <> '__diesel_schema_migrations' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let c: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM \"{}\" t \
             WHERE t::text LIKE '%' || $1 || '%' OR t::text LIKE '%' || $2 || '%'",
            t.name
        ))
        .bind::<Text, _>(user)
        .bind::<Text, _>(email)
        .get_result(&mut conn)
        .await
        .unwrap();
        out.insert(t.name, c.n);
    }
    out
}

/// Keys of the stack's Redis prefix that name `user` or its email's sign-in tag, and whether
/// the leaderboard ranks it.
async fn redis_of(s: &Stack, user: &str, email: &str) -> (Vec<String>, bool) {
    let client = redis::Client::open(s.redis_url.as_str()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let tag = db_core::cache::limits::account_tag(email);
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}:*", s.redis_prefix))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut r)
            .await
            .unwrap();
        keys.extend(
            batch
                .into_iter()
                .filter(|k| k.contains(user) || k.contains(&tag)),
        );
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    let ranked: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{}:leaderboard:xp", s.redis_prefix))
        .arg(user)
        .query_async(&mut r)
        .await
        .unwrap();
    (keys, ranked.is_some())
}

/// Files the media service stores whose path names `user`.
fn files_of(s: &Stack, user: &str) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    let mut all = Vec::new();
    walk(s.media_dir(), &mut all);
    all.retain(|p| p.contains(user));
    all
}

struct Census {
    rows: BTreeMap<String, i64>,
    keys: Vec<String>,
    ranked: bool,
    files: Vec<String>,
}

async fn census(s: &Stack, user: &str, email: &str) -> Census {
    let rows = rows_naming(s, user, email).await;
    let (keys, ranked) = redis_of(s, user, email).await;
    Census {
        rows,
        keys,
        ranked,
        files: files_of(s, user),
    }
}

fn family_of(key: &str, prefix: &str) -> String {
    let rest = key
        .strip_prefix(prefix)
        .unwrap_or(key)
        .trim_start_matches(':');
    let mut parts = rest.split(':');
    match (parts.next(), parts.next()) {
        (Some("ratelimit"), Some(scope)) => format!("ratelimit:{scope}"),
        (Some(a), Some(b)) if !b.contains('-') => format!("{a}:{b}"),
        (Some(a), _) => a.to_owned(),
        _ => rest.to_owned(),
    }
}

fn print_census(label: &str, c: &Census, prefix: &str) {
    let rows: i64 = c.rows.values().sum();
    println!("{label}: PostgreSQL {rows} rows naming the user");
    for (t, n) in c.rows.iter().filter(|(_, n)| **n > 0) {
        println!("    {t:<22} {n}");
    }
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    for k in &c.keys {
        *families.entry(family_of(k, prefix)).or_default() += 1;
    }
    println!(
        "{label}: Redis {} keys naming the user{}",
        c.keys.len(),
        if c.ranked {
            " + its leaderboard entry"
        } else {
            ", not in the leaderboard"
        }
    );
    for (f, n) in &families {
        println!("    {f:<22} {n}");
    }
    println!("{label}: storage {} files", c.files.len());
    for f in &c.files {
        println!("    {}", f.rsplit("/photos/").next().unwrap_or(f));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_leaves_nothing_in_postgresql_redis_or_storage() {
    let s = Stack::with(Options {
        // A purge's second pass comes two job leases after the first.
        env: vec![("MEDIA_JOB_LEASE_MS", "1000".into())],
        ..Options::default()
    })
    .await;
    println!("── delete the account ──");
    let email = "lea@example.com";
    let signed_up = s.sign_up(email).await;
    let lea = bearer(&signed_up);
    let user = signed_up["user"]["id"].as_str().unwrap().to_owned();
    lived_in(&s, &lea).await;
    // What fills the caches: the profile, the match list, the windows, the gallery page, the
    // unread count, the leaderboard, typing, an export's limit, a failed sign-in, a logout.
    for path in [
        "/api/v1/users/me",
        "/api/v1/users/me/stats",
        "/api/v1/leaderboard",
        "/api/v1/matches",
        "/api/v1/conversations/sophia/messages",
        "/api/v1/conversations/hugo/messages",
        "/api/v1/photos/sophia",
    ] {
        assert_eq!(s.get(path, &lea).await.0, StatusCode::OK, "{path}");
    }
    let (status, _) = s
        .call(
            Method::PUT,
            "/api/v1/conversations/sophia/typing",
            Some(&lea),
            Some(json!({ "typing": true })),
        )
        .await;
    assert!(status.is_success(), "typing: {status}");
    assert_eq!(export(&s, &lea).await.status(), StatusCode::OK);
    login(&s, email, "pas le bon").await;
    let (_, spare) = login(&s, email, "un mot de passe").await;
    s.post(
        "/api/v1/auth/logout",
        None,
        json!({ "refresh_token": spare["refresh_token"] }),
    )
    .await;
    let (_, other_device) = login(&s, email, "un mot de passe").await;
    // A bystander whose data must all stay.
    let hugo_login = s.sign_up("hugo@example.com").await;
    let hugo = bearer(&hugo_login);
    let hugo_id = hugo_login["user"]["id"].as_str().unwrap().to_owned();
    lived_in(&s, &hugo).await;
    let hugo_before = census(&s, &hugo_id, "hugo@example.com").await;

    let before = census(&s, &user, email).await;
    print_census("before", &before, &s.redis_prefix);
    assert!(before.rows.values().sum::<i64>() > 10 && before.keys.len() > 5);
    assert!(
        before.ranked && before.files.len() >= 2,
        "the photo and its rendition"
    );

    // Bad input first: nothing is deleted.
    let (status, p) = call(
        &s,
        Method::DELETE,
        "/api/v1/users/me",
        Some(&lea),
        Some(json!({ "password": "pas le bon" })),
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (status, _) = call(
        &s,
        Method::DELETE,
        "/api/v1/users/me",
        Some(&lea),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &s,
        Method::DELETE,
        "/api/v1/users/me",
        None,
        Some(json!({ "password": "un mot de passe" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.get("/api/v1/users/me", &lea).await.0, StatusCode::OK);

    let started = Instant::now();
    let (status, _) = call(
        &s,
        Method::DELETE,
        "/api/v1/users/me",
        Some(&lea),
        Some(json!({ "password": "un mot de passe" })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answered = started.elapsed();
    for t in [&lea, &bearer(&other_device)] {
        let took = refused_everywhere(&s, t).await;
        println!(
            "  a token of the deleted account refused by all 6 processes (gateway, auth, chat ×2, media, ai) after {took:?}"
        );
    }
    let (status, _) = call(
        &s,
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": other_device["refresh_token"] })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The images go by the media service's purge (two passes); wait for it to finish.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let c = census(&s, &user, email).await;
        if c.rows.values().all(|n| *n == 0) && c.files.is_empty() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "still there: {:?} {:?}",
            c.rows,
            c.files
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "deleted: answered in {answered:?}; PostgreSQL and storage empty of it {:?} after the request",
        started.elapsed()
    );
    print_census("after", &after, &s.redis_prefix);
    assert_eq!(after.rows.values().sum::<i64>(), 0, "{:?}", after.rows);
    assert_eq!(after.keys, Vec::<String>::new());
    assert!(!after.ranked);
    assert_eq!(after.files, Vec::<String>::new());
    // (Checked after the census: a failed sign-in leaves a throttling key for its email and
    // address, whether or not the account exists.)
    let (status, _) = login(&s, email, "un mot de passe").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The bystander lost nothing.
    let hugo_after = census(&s, &hugo_id, "hugo@example.com").await;
    assert_eq!(hugo_after.rows, hugo_before.rows);
    assert_eq!(hugo_after.files, hugo_before.files);
    assert!(hugo_after.ranked);
    println!(
        "bystander: {} rows, {} files before and after",
        hugo_after.rows.values().sum::<i64>(),
        hugo_after.files.len()
    );
    assert_eq!(s.get("/api/v1/users/me", &hugo).await.0, StatusCode::OK);
}
