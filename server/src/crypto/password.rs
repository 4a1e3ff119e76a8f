//! Password hashing (argon2id) on a bounded pool of threads of its own.

use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::Arc;

/// argon2id hashing on a few threads of its own; also holds a dummy hash so unknown emails
/// cost the same time as wrong passwords.
///
/// The work is bounded for real: `threads` hashes run at once (one core stays free for
/// refreshes and token checks) and at most `queue` more wait; beyond that a request is refused
/// at once (503 with `Retry-After`). A request that gives up while its hash is queued costs
/// nothing; one that gives up mid-hash does not free a place before the hash ends. Memory stays
/// at `threads` × 19 MiB (argon2id's default cost), also because only these threads allocate
/// the hashing memory (each thread of a large pool would keep its own malloc arena of it).
pub struct PasswordHasher {
    dummy: String,
    jobs: std::sync::mpsc::SyncSender<HashJob>,
    /// When a full queue was last logged (unix ms): a flood logs one line per 10 s, not one
    /// per refused request.
    full_warning: crate::logs::Every,
}

/// The stored "hash" of an account without a password: no password verifies against it (it
/// is not a PHC string), and checking one costs what a real check costs (`verify`).
pub const NO_PASSWORD: &str = "!no-password";

pub type HashJob = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher")
    }
}

impl PasswordHasher {
    pub fn new(queue: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        let (jobs, rx) = std::sync::mpsc::sync_channel::<HashJob>(queue);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("baton-hash-{i}"))
                .spawn(move || loop {
                    // Ends when the hasher (the sending side) is dropped.
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            dummy: hash_now("baton-dummy-password").unwrap_or_default(),
            jobs,
            full_warning: crate::logs::Every::new(std::time::Duration::from_secs(10)),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: HashJob = Box::new(move || {
            if !done.is_closed() {
                let _ = done.send(f());
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => {
                if self.full_warning.due(crate::clock::now_ms()) {
                    tracing::warn!("password hashing queue full: requests refused with 503");
                }
                ApiError::unavailable()
            }
            std::sync::mpsc::TrySendError::Disconnected(_) => ApiError::internal(),
        })?;
        result.await.map_err(|_| ApiError::internal())
    }

    pub async fn hash(&self, password: String) -> ApiResult<String> {
        self.blocking(move || hash_now(&password))
            .await?
            .ok_or_else(ApiError::internal)
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user or
    /// the account has no password (`NO_PASSWORD`): the same work either way.
    pub async fn verify(&self, password: String, hash: Option<String>) -> ApiResult<bool> {
        let hash = hash.filter(|h| PasswordHash::new(h).is_ok());
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .blocking(move || {
                PasswordHash::new(&hash)
                    .map(|h| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &h)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && known)
    }
}

fn hash_now(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}
