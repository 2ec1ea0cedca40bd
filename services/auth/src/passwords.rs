//! Argon2id password hashes (argon2's defaults: m = 19 MiB, t = 2, p = 1), computed off the
//! async workers.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use service_kit::ApiError;

/// A hash to verify against when the account does not exist, so that the answer takes as long
/// and nobody learns which emails have accounts.
fn dummy() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(uuid::Uuid::new_v4().as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Hashes run at most one per core: more at once would not finish sooner, and each holds
/// 19 MiB (2,000 logins at once once grew the service to 585 MB resident).
static CORES: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(cores()));
/// Sign-ups may use half the cores at most: a flood of them leaves the rest to sign-ins.
static SIGNUP_CORES: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new((cores() / 2).max(1)));

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A queue of hashes waiting for a core, bounded: past its bound the answer is an immediate
/// 503, so a flood is refused fast instead of queueing everyone behind it.
struct Queue {
    waiting: std::sync::atomic::AtomicUsize,
    max: usize,
    name: &'static str,
}

impl Queue {
    async fn enter<'s>(
        &self,
        semaphore: &'s tokio::sync::Semaphore,
    ) -> Result<tokio::sync::SemaphorePermit<'s>, ApiError> {
        use std::sync::atomic::Ordering;
        if let Ok(p) = semaphore.try_acquire() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("auth_hash_shed_total", "queue" => self.name).increment(1);
            return Err(ApiError::Unavailable { retry_after: 1 });
        }
        let permit = semaphore.acquire().await.map_err(ApiError::internal);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit
    }
}

/// Sign-ins waiting: about half a second of work on two cores (a hash takes ~25 ms in a
/// release build).
static SIGNINS: Queue = Queue {
    waiting: std::sync::atomic::AtomicUsize::new(0),
    max: 32,
    name: "sign_in",
};
/// Sign-ups waiting, fewer: they are rarer, and one address can only make a few an hour.
static SIGNUPS: Queue = Queue {
    waiting: std::sync::atomic::AtomicUsize::new(0),
    max: 8,
    name: "sign_up",
};

/// A new hash (a sign-up): one of the sign-up cores, then a core.
pub async fn hash(password: String) -> Result<String, ApiError> {
    let _signup = SIGNUPS.enter(&SIGNUP_CORES).await?;
    let _core = CORES.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// True when `password` matches `stored` (or, with `stored` absent, after the same work).
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    let _core = SIGNINS.enter(&CORES).await?;
    tokio::task::spawn_blocking(move || {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy().to_owned());
        let ok = PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        exists && ok
    })
    .await
    .map_err(ApiError::internal)
}
