//! A bb8 pool per thread that uses it.
//!
//! A PostgreSQL or Redis connection is driven by a task of its own (tokio-postgres' connection,
//! redis' multiplexer), spawned on the runtime that opened it. An actix-web service runs one
//! single-threaded runtime per HTTP worker, so with one pool shared by all workers a query
//! made on one worker went out through a connection driven by another: the request crossed
//! to the other thread and the answer crossed back, two wake-ups through the kernel per round
//! trip. Here each thread opens and keeps its own connections, and a query never leaves the
//! thread that made it.
//!
//! The connections a deployment allows are shared out: each thread's pool holds at most
//! `max_size / threads` (at least one: with more threads than connections, a thread each),
//! and keeps `min_idle / threads` (rounded up) warm.

use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;

use thread_local::ThreadLocal;

/// How one thread's share of a pool is built.
pub(crate) type Build<M> = Box<dyn Fn(Share) -> bb8::Pool<M> + Send + Sync>;

/// One thread's share of the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Share {
    pub min_idle: u32,
    pub max_size: u32,
}

impl Share {
    /// `threads` threads sharing `min_idle` warm and `max_size` open connections.
    pub fn of(min_idle: u32, max_size: u32, threads: u32) -> Self {
        let threads = threads.max(1);
        let max_size = (max_size / threads).max(1);
        Self {
            min_idle: min_idle.div_ceil(threads).min(max_size),
            max_size,
        }
    }

    /// For a thread that only checks now and then (the admin listener's readiness check): one
    /// connection, none kept warm.
    pub const CHECK: Share = Share {
        min_idle: 0,
        max_size: 1,
    };
}

/// A thread's pool, and the thread it was built for.
struct Slot<M: bb8::ManageConnection> {
    thread: ThreadId,
    share: Share,
    pool: bb8::Pool<M>,
}

pub(crate) struct PerThread<M: bb8::ManageConnection> {
    /// Locked only by its own thread, and by [`PerThread::each`] for the figures.
    pools: ThreadLocal<Mutex<Slot<M>>>,
    share: Share,
    build: Build<M>,
}

impl<M: bb8::ManageConnection> PerThread<M> {
    pub fn new(share: Share, build: Build<M>) -> Self {
        Self {
            pools: ThreadLocal::new(),
            share,
            build,
        }
    }

    /// This thread's pool, built on first use (inside a tokio runtime: the pool spawns its
    /// connections and its reaper on it).
    pub fn get(&self) -> bb8::Pool<M> {
        self.get_with(self.share)
    }

    /// This thread's pool, built with `share` if the thread has none yet.
    pub fn get_with(&self, share: Share) -> bb8::Pool<M> {
        let me = std::thread::current().id();
        let fresh = || Slot {
            thread: me,
            share,
            pool: (self.build)(share),
        };
        let mut slot = self
            .pools
            .get_or(|| Mutex::new(fresh()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.thread != me {
            // A thread that exited left this place (and its id) to this one: its connections
            // were driven by tasks of the runtime that died with it.
            *slot = fresh();
        }
        slot.pool.clone()
    }

    /// Every thread's pool built so far, with its share.
    pub fn each(&self) -> impl Iterator<Item = (Share, bb8::Pool<M>)> + '_ {
        self.pools.iter().map(|slot| {
            let slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            (slot.share, slot.pool.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Share;

    #[test]
    fn threads_share_the_connections_and_each_gets_one() {
        assert_eq!(
            Share::of(2, 12, 3),
            Share {
                min_idle: 1,
                max_size: 4
            }
        );
        assert_eq!(
            Share::of(20, 30, 3),
            Share {
                min_idle: 7,
                max_size: 10
            }
        );
        assert_eq!(
            Share::of(0, 4, 1),
            Share {
                min_idle: 0,
                max_size: 4
            }
        );
        // More threads than connections: each still gets one, and none is warm past its cap.
        assert_eq!(
            Share::of(5, 2, 8),
            Share {
                min_idle: 1,
                max_size: 1
            }
        );
        assert_eq!(Share::of(1, 1, 0).max_size, 1);
    }
}
