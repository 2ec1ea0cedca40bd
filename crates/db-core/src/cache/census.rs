//! What the dashboard shows of Redis: keys under our prefix by family, counted by a `SCAN`
//! that advances a bounded number of steps per refresh (never `KEYS`, never the whole keyspace
//! at once), and the server's memory and clients.

use serde::Serialize;

use super::{Family, Keyspace};
use crate::redis_pool::{RedisError, RedisPool};

/// An incremental count of our keys by family.
pub struct KeyCensus {
    keys: Keyspace,
    cursor: u64,
    partial: Vec<u64>,
    other: u64,
    last: Option<(Vec<u64>, u64)>,
}

/// Keys by family, from the last complete pass (or the pass in progress).
#[derive(Debug, Clone, Serialize)]
pub struct CensusView {
    pub families: Vec<(&'static str, u64)>,
    pub other: u64,
    pub total: u64,
    /// False while the first pass is still running: the counts are partial.
    pub complete: bool,
}

impl KeyCensus {
    pub fn new(keys: Keyspace) -> Self {
        Self {
            keys,
            cursor: 0,
            partial: vec![0; Family::ALL.len()],
            other: 0,
            last: None,
        }
    }

    /// Advances the scan by at most `steps` calls of `COUNT 1000`.
    pub async fn step(&mut self, redis: &RedisPool, steps: usize) -> Result<(), RedisError> {
        for _ in 0..steps {
            let mut scan = redis::cmd("SCAN");
            scan.arg(self.cursor)
                .arg("MATCH")
                .arg(self.keys.everything())
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = redis.query(&scan).await?;
            for key in batch {
                match Family::of_key(&self.keys, &key) {
                    Some(f) => self.partial[f.index()] += 1,
                    None => self.other += 1,
                }
            }
            self.cursor = next;
            if next == 0 {
                let done = std::mem::replace(&mut self.partial, vec![0; Family::ALL.len()]);
                self.last = Some((done, std::mem::take(&mut self.other)));
                return Ok(());
            }
        }
        Ok(())
    }

    pub fn view(&self) -> CensusView {
        let (counts, other, complete) = match &self.last {
            Some((c, o)) => (c.clone(), *o, true),
            None => (self.partial.clone(), self.other, false),
        };
        let families: Vec<(&'static str, u64)> =
            Family::ALL.iter().map(|f| f.name()).zip(counts).collect();
        let total = families.iter().map(|(_, n)| n).sum::<u64>() + other;
        CensusView {
            families,
            other,
            total,
            complete,
        }
    }
}

/// The server's figures the dashboard shows.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub used_memory: String,
    pub connected_clients: u64,
    pub version: String,
}

pub async fn server_info(redis: &RedisPool) -> Result<ServerInfo, RedisError> {
    let text: String = redis.query(&redis::cmd("INFO")).await?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    Ok(ServerInfo {
        used_memory: field("used_memory_human"),
        connected_clients: field("connected_clients").parse().unwrap_or(0),
        version: field("redis_version"),
    })
}
