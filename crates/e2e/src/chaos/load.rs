//! The load: clients of the gateway sending messages (each with a `client_id`, retried as a
//! client would), reading their conversation and their match list, open loop (a request every
//! 1/rate seconds whether or not the others have answered) or closed loop. Every read is
//! checked against the writes acknowledged to that user before the read started.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::User;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Send,
    Read,
    Matches,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Read => "conversation",
            Op::Matches => "matches",
        }
    }

    pub fn writes(self) -> bool {
        self == Op::Send
    }
}

/// Shares of each operation, in percent.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub send: u64,
    pub read: u64,
}

impl Default for Mix {
    /// Mostly reads, as people use a chat: 20 % sends, 50 % conversation reads, 30 % match lists.
    fn default() -> Self {
        Self { send: 20, read: 50 }
    }
}

impl Mix {
    /// The `n`-th request's operation: spread evenly through the run.
    fn op(self, n: u64) -> Op {
        match (n.wrapping_mul(37)) % 100 {
            x if x < self.send => Op::Send,
            x if x < self.send + self.read => Op::Read,
            _ => Op::Matches,
        }
    }
}

/// One HTTP exchange (a client's retry is another record).
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub op: Op,
    /// When it started, from the load's start.
    pub at: Duration,
    pub latency: Duration,
    /// 0: no answer (connection refused or cut, timeout).
    pub status: u16,
}

impl Record {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A read that did not show a message acknowledged to the same user before the read started.
#[derive(Clone, Debug)]
pub struct Stale {
    pub op: Op,
    pub user: usize,
    pub expected: i64,
    pub newest_seen: Option<i64>,
    pub at: Duration,
}

/// Messages a conversation read asks for.
const READ_LIMIT: usize = 50;

/// Where a message sorts in its conversation: by time, then id, as PostgreSQL orders them (two
/// sends that overlap can take their ids in the other order from their times).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
    at_micros: i64,
    id: i64,
}

impl Place {
    fn of(at: Option<&str>, id: Option<i64>) -> Option<Self> {
        Some(Self {
            at_micros: chrono::DateTime::parse_from_rfc3339(at?)
                .ok()?
                .timestamp_micros(),
            id: id?,
        })
    }
}

/// One message a client tried to send, and whether it was acknowledged (its id).
#[derive(Clone, Debug)]
pub struct Sent {
    pub user: usize,
    pub client_id: Uuid,
    pub content: String,
    pub acked: Option<i64>,
}

pub(crate) struct Log {
    pub(crate) t0: Instant,
    records: Mutex<Vec<Record>>,
    /// Per user: (when acknowledged, the message's place in its conversation).
    acks: Vec<Mutex<Vec<(Instant, Place)>>>,
    sent: Mutex<Vec<Sent>>,
    stale: Mutex<Vec<Stale>>,
    /// Requests the client could not even start (too many already waiting).
    pub(crate) backlog: AtomicU64,
}

impl Log {
    fn new(users: usize) -> Self {
        Self {
            t0: Instant::now(),
            records: Mutex::new(Vec::new()),
            acks: (0..users).map(|_| Mutex::new(Vec::new())).collect(),
            sent: Mutex::new(Vec::new()),
            stale: Mutex::new(Vec::new()),
            backlog: AtomicU64::new(0),
        }
    }

    fn record(&self, op: Op, started: Instant, status: u16) {
        let r = Record {
            op,
            at: started - self.t0,
            latency: started.elapsed(),
            status,
        };
        self.records.lock().expect("log").push(r);
    }

    /// The newest message acknowledged to `user` before `instant`.
    fn acked_before(&self, user: usize, instant: Instant) -> Option<Place> {
        self.acks[user]
            .lock()
            .expect("log")
            .iter()
            .filter(|(at, _)| *at < instant)
            .map(|(_, place)| *place)
            .max()
    }
}

/// Where the load sends its requests, and for whom.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) base: String,
    pub(crate) http: Client,
    pub(crate) users: Arc<Vec<User>>,
}

/// A running load; [`Load::stop`] waits for every request it started.
pub struct Load {
    stop: Arc<AtomicBool>,
    driver: tokio::task::JoinHandle<()>,
    pub(crate) log: Arc<Log>,
}

/// What a finished load saw.
pub struct Seen {
    pub records: Vec<Record>,
    pub sent: Vec<Sent>,
    pub stale: Vec<Stale>,
    pub backlog: u64,
    pub t0: Instant,
}

/// Requests a load may have waiting for an answer at once, unless told otherwise.
pub const MAX_WAITING: usize = 20_000;

impl Load {
    /// `rate` requests per second, open loop, at most [`MAX_WAITING`] waiting.
    pub(crate) fn open(target: Target, rate: f64, mix: Mix) -> Self {
        Self::open_bounded(target, rate, mix, MAX_WAITING)
    }

    /// `rate` requests per second, open loop; past `max_waiting` requests waiting for an answer
    /// (every client's connections busy), a request is not sent and counted in the backlog.
    pub(crate) fn open_bounded(target: Target, rate: f64, mix: Mix, max_waiting: usize) -> Self {
        let log = Arc::new(Log::new(target.users.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let waiting = Arc::new(Semaphore::new(max_waiting));
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    n += 1;
                    let Ok(permit) = waiting.clone().try_acquire_owned() else {
                        log.backlog.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let (target, log) = (target.clone(), log.clone());
                    tokio::spawn(async move {
                        one(&target, &log, n, mix).await;
                        drop(permit);
                    });
                }
                let _ = waiting.acquire_many(max_waiting as u32).await;
            })
        };
        Self { stop, driver, log }
    }

    /// `connections` clients, each sending its next request when the last one is answered.
    pub(crate) fn closed(target: Target, connections: usize, mix: Mix) -> Self {
        let log = Arc::new(Log::new(target.users.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let driver = {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let workers: Vec<_> = (0..connections)
                    .map(|_| {
                        let (target, log, stop, counter) =
                            (target.clone(), log.clone(), stop.clone(), counter.clone());
                        tokio::spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                let n = counter.fetch_add(1, Ordering::Relaxed);
                                one(&target, &log, n, mix).await;
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    let _ = w.await;
                }
            })
        };
        Self { stop, driver, log }
    }

    /// Since the load started.
    pub fn elapsed(&self) -> Duration {
        self.log.t0.elapsed()
    }

    pub async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.driver.await;
        let log = &self.log;
        Seen {
            records: std::mem::take(&mut *log.records.lock().expect("log")),
            sent: std::mem::take(&mut *log.sent.lock().expect("log")),
            stale: std::mem::take(&mut *log.stale.lock().expect("log")),
            backlog: log.backlog.load(Ordering::Relaxed),
            t0: log.t0,
        }
    }
}

/// The `n`-th request of the load.
async fn one(target: &Target, log: &Log, n: u64, mix: Mix) {
    let user = (n as usize) % target.users.len();
    match mix.op(n) {
        Op::Send => send(target, log, user).await,
        op => read(target, log, user, op).await,
    }
}

/// A message with a fresh `client_id`, sent again with the same id after a failure (up to
/// three times), as the web app does.
async fn send(target: &Target, log: &Log, user: usize) {
    let u = &target.users[user];
    let client_id = Uuid::new_v4();
    let content = format!("chaos {client_id}");
    let url = format!(
        "{}/api/v1/conversations/{}/messages",
        target.base, u.character
    );
    let mut acked = None;
    for attempt in 0..4u64 {
        let started = Instant::now();
        let res = target
            .http
            .post(&url)
            .bearer_auth(&u.token)
            .json(&json!({ "content": content, "client_id": client_id }))
            .send()
            .await;
        let (status, body) = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.ok())
            }
            Err(_) => (0, None),
        };
        log.record(Op::Send, started, status);
        if matches!(status, 200 | 201) {
            acked = body.as_ref().and_then(|b| b["id"].as_i64());
            let place = body
                .as_ref()
                .and_then(|b| Place::of(b["created_at"].as_str(), acked));
            if let Some(place) = place {
                log.acks[user]
                    .lock()
                    .expect("log")
                    .push((Instant::now(), place));
            }
            break;
        }
        if (400..500).contains(&status) && status != 408 && status != 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250 * (attempt + 1))).await;
    }
    log.sent.lock().expect("log").push(Sent {
        user,
        client_id,
        content,
        acked,
    });
}

async fn read(target: &Target, log: &Log, user: usize, op: Op) {
    let u = &target.users[user];
    let url = match op {
        Op::Read => format!(
            "{}/api/v1/conversations/{}/messages?limit={READ_LIMIT}",
            target.base, u.character
        ),
        _ => format!("{}/api/v1/matches", target.base),
    };
    let started = Instant::now();
    let expected = log.acked_before(user, started);
    let res = target.http.get(&url).bearer_auth(&u.token).send().await;
    let (status, body) = match res {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.ok())
        }
        Err(_) => (0, None),
    };
    log.record(op, started, status);
    let (Some(expected), Some(body), 200) = (expected, body, status) else {
        return;
    };
    let (shown, newest) = match op {
        Op::Read => {
            let items = body["items"].as_array().cloned().unwrap_or_default();
            let ids: Vec<i64> = items.iter().filter_map(|m| m["id"].as_i64()).collect();
            // A full page whose oldest message is newer than the expected one holds newer
            // messages only: the expected one is on a later page, not missing.
            let past = items.len() == READ_LIMIT
                && items.last().is_some_and(|m| {
                    Place::of(m["created_at"].as_str(), m["id"].as_i64())
                        .is_some_and(|oldest| oldest > expected)
                });
            (ids.contains(&expected.id) || past, ids.first().copied())
        }
        _ => {
            let last = body.as_array().and_then(|a| {
                a.iter()
                    .find(|m| m["character_id"] == u.character.as_str())
                    .and_then(|m| {
                        Place::of(m["last_message_at"].as_str(), m["last_message_id"].as_i64())
                    })
            });
            (last.is_some_and(|l| l >= expected), last.map(|l| l.id))
        }
    };
    if !shown {
        log.stale.lock().expect("log").push(Stale {
            op,
            user,
            expected: expected.id,
            newest_seen: newest,
            at: started - log.t0,
        });
    }
}
