//! A circuit breaker in front of Redis: after a few failures in a row it stops sending
//! commands for a moment, then lets one probe through; the first success closes it again.
//! A probe that never reports (its request was cancelled) does not hold the breaker: another
//! is let through a cool-down later. It also keeps the log quiet: one warning when it opens,
//! one line when Redis is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    consecutive_failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    /// When the probe in flight was let through, if one is.
    probing: Mutex<Option<Instant>>,
    opened_total: AtomicU64,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cool_down,
            consecutive_failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            probing: Mutex::new(None),
            opened_total: AtomicU64::new(0),
        }
    }

    /// May a command go to Redis now?
    pub fn allow(&self) -> bool {
        let open_until = self.open_until.lock().map(|g| *g).unwrap_or(None);
        match open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            // Half-open: one probe at a time (or another, if it never reported).
            Some(_) => {
                let Ok(mut p) = self.probing.lock() else {
                    return false;
                };
                match *p {
                    Some(since) if since.elapsed() < self.cool_down => false,
                    _ => {
                        *p = Some(Instant::now());
                        true
                    }
                }
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_until.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    pub fn success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.end_probe();
        if let Ok(mut g) = self.open_until.lock()
            && g.take().is_some()
        {
            tracing::info!("redis is answering again; cache back in use");
        }
    }

    pub fn failure(&self, error: &dyn std::fmt::Display) {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let was_probe = self.end_probe();
        if (n >= self.threshold || was_probe)
            && let Ok(mut g) = self.open_until.lock()
        {
            if g.is_none() {
                self.opened_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, cool_down_ms = self.cool_down.as_millis() as u64,
                    "redis failing; serving from PostgreSQL until it answers again");
            }
            *g = Some(Instant::now() + self.cool_down);
        }
    }

    /// A call that got no answer while Redis answered others: neither a success nor a failure,
    /// but if it was the probe, the next call may probe at once.
    pub fn late(&self) {
        self.end_probe();
    }

    /// Ends the probe in flight; whether there was one.
    fn end_probe(&self) -> bool {
        self.probing
            .lock()
            .map(|mut p| p.take().is_some())
            .unwrap_or(false)
    }

    /// How many times the breaker has opened.
    pub fn opened_total(&self) -> u64 {
        self.opened_total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cool_down() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure(&"x");
        }
        assert!(!b.is_open());
        b.failure(&"x");
        assert!(b.is_open() && !b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        b.failure(&"still down");
        assert!(!b.allow(), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert!(!b.is_open() && b.allow() && b.allow());
        assert_eq!(b.opened_total(), 1);
    }

    #[test]
    fn a_late_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, Duration::from_millis(30));
        b.failure(&"x");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "a probe, which comes back late");
        b.late();
        assert!(b.is_open(), "late is no success");
        assert!(b.allow(), "the next call probes at once");
        b.success();
        assert!(!b.is_open());
    }

    #[test]
    fn a_probe_that_never_reports_does_not_hold_it_open() {
        let b = Breaker::new(1, Duration::from_millis(30));
        b.failure(&"x");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "a probe, whose request is then cancelled");
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "another probe a cool-down later");
        b.success();
        assert!(!b.is_open());
    }
}
