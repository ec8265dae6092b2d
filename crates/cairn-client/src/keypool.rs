//! A background pool of RSA-2048 signing keys, so creating a mutable file (or directory)
//! does not wait for key generation on the common path.
//!
//! Generating an RSA-2048 key is pure CPU work with a long tail (random prime search):
//! on this 2-core machine, release build, 20 keys, under a load average of about 4 from
//! other work, min 200 ms, median 440-500 ms, max 0.9-1.5 s; a take from a warm pool took
//! 20-40 µs (the ignored `keygen_time` test in `tests/keypool.rs`). Tahoe generates the
//! key on the request path; cairn keeps up to `target` keys made ahead of time. One
//! generator therefore sustains only a few creates a second: the pool absorbs bursts, it
//! does not raise the long-run rate.
//!
//! - The key generation itself is `cairn_core`'s [`SigningKey::generate_rsa`]; this module
//!   only owns what the core may not: OS threads and the OS random number generator.
//! - Generators are dedicated OS threads (never the async runtime's workers). There are
//!   [`KeyPoolConfig::generators`] of them, one by default so a small machine keeps a core
//!   for requests. Each sleeps on a condition variable until the pool holds fewer keys
//!   (counting those being made) than `target` plus the takers waiting.
//! - [`KeyPool::take`] hands out a pooled key at once when there is one; otherwise it queues
//!   (first come, first served) for the next key a generator finishes. It never starts a
//!   generation of its own, so at most `generators` keys are ever made at the same time.
//!   [`KeyPool::try_take`] never waits.
//! - Dropping the pool tells the generators to stop and wipes the pooled keys; a generator
//!   in the middle of a key finishes it, discards it and exits. [`KeyPool::shutdown`] does
//!   the same and also joins the threads.
//! - Keys are secrets: nothing here prints them, and [`SigningKey`] wipes itself on drop
//!   (including keys discarded at shutdown or left behind by a cancelled take).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use cairn_core::mutable::keys::SigningKey;
use rand::rngs::OsRng;
use thiserror::Error;
use tokio::sync::oneshot;

/// Keys kept ready by [`KeyPoolConfig::default`]: enough for a burst of creates (a small
/// directory tree) without waiting; one generator refills it at roughly 2-5 keys a second.
pub const DEFAULT_TARGET: usize = 8;
/// Generator threads by [`KeyPoolConfig::default`]: one, so that on a 2-core machine key
/// generation never takes every core from request handling.
pub const DEFAULT_GENERATORS: usize = 1;
/// Largest accepted `target`. Each key is a few KiB of secret material held in memory;
/// a pool beyond this is a configuration mistake rather than a need.
pub const MAX_TARGET: usize = 1024;
/// Largest accepted `generators`: more threads than this only contend for the CPU.
pub const MAX_GENERATORS: usize = 64;

/// How big the pool is and how many threads fill it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPoolConfig {
    /// Keys to keep ready. 0 makes every [`KeyPool::take`] wait for a fresh key.
    pub target: usize,
    /// Generator threads (at least 1); also the most keys ever generated at once.
    pub generators: usize,
}

impl Default for KeyPoolConfig {
    fn default() -> Self {
        KeyPoolConfig {
            target: DEFAULT_TARGET,
            generators: DEFAULT_GENERATORS,
        }
    }
}

/// Why a pool could not be built or could not hand out a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyPoolError {
    /// The caller's configuration is out of range.
    #[error("invalid key pool configuration: {0}")]
    InvalidConfig(&'static str),
    /// The operating system refused to start a generator thread.
    #[error("could not start a key generator thread: {0}")]
    Spawn(String),
    /// Every generator has stopped (a key generation failed or a generator panicked), so
    /// no key will come. Unexpected: please report it with the reason.
    #[error("key generators stopped: {reason}")]
    GeneratorsStopped { reason: String },
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPoolStats {
    /// Keys ready now.
    pub available: usize,
    /// Keys being generated now (never more than the number of generators).
    pub generating: usize,
    /// Keys generated since start, including any discarded at shutdown.
    pub generated: u64,
    /// Takes (and successful `try_take`s) answered from the pool without waiting.
    pub served_from_pool: u64,
    /// Takes that found the pool empty and waited for a generator.
    pub waited: u64,
    /// Generator threads still running; 0 once the pool is dropped and they have exited.
    pub running_generators: usize,
}

/// A background pool of RSA-2048 signing keys. See the module docs.
pub struct KeyPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A handle to a pool's counters that stays valid after the pool is dropped (it holds no
/// keys), so the shutdown of the generators can be observed.
#[derive(Clone)]
pub struct KeyPoolMonitor {
    counters: Arc<Counters>,
}

impl KeyPool {
    /// A pool keeping `target` keys ready, filled by [`DEFAULT_GENERATORS`] thread(s).
    ///
    /// # Panics
    /// If `target` exceeds [`MAX_TARGET`] or the OS refuses to start a thread (as
    /// `std::thread::spawn` does); [`KeyPool::with_config`] returns those as errors.
    pub fn new(target: usize) -> KeyPool {
        let config = KeyPoolConfig {
            target,
            ..KeyPoolConfig::default()
        };
        match KeyPool::with_config(config) {
            Ok(pool) => pool,
            Err(e) => panic!("KeyPool::new({target}): {e}"),
        }
    }

    /// A pool with the given size and generator count; generation starts at once.
    pub fn with_config(config: KeyPoolConfig) -> Result<KeyPool, KeyPoolError> {
        if config.generators == 0 {
            return Err(KeyPoolError::InvalidConfig(
                "at least one generator is needed",
            ));
        }
        if config.generators > MAX_GENERATORS {
            return Err(KeyPoolError::InvalidConfig("too many generators"));
        }
        if config.target > MAX_TARGET {
            return Err(KeyPoolError::InvalidConfig("target too large"));
        }
        let shared = Arc::new(Shared::new(config.target));
        let mut pool = KeyPool {
            shared,
            threads: Vec::with_capacity(config.generators),
        };
        for i in 0..config.generators {
            let shared = Arc::clone(&pool.shared);
            // Counted before the thread starts so `running_generators` never under-reports;
            // the thread's exit guard takes it back.
            shared
                .counters
                .running_generators
                .fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("cairn-keygen-{i}"))
                .spawn(move || generator_main(shared));
            match spawned {
                Ok(handle) => pool.threads.push(handle),
                Err(e) => {
                    pool.shared
                        .counters
                        .running_generators
                        .fetch_sub(1, Ordering::SeqCst);
                    // Dropping `pool` stops the generators already started.
                    return Err(KeyPoolError::Spawn(e.to_string()));
                }
            }
        }
        Ok(pool)
    }

    /// A key: from the pool at once if there is one (a generator then starts refilling),
    /// otherwise the next key a generator finishes, in order of arrival. Cancel-safe: a
    /// take dropped while waiting gives up its place, and the key made for it goes to the
    /// pool (unless it had already been handed over, in which case it is wiped).
    pub async fn take(&self) -> Result<SigningKey, KeyPoolError> {
        let receiver = {
            let mut state = self.shared.lock();
            if let Some(key) = self.pop_ready(&mut state) {
                drop(state);
                self.shared.wake_generators.notify_one();
                return Ok(key);
            }
            if let Some(reason) = &state.stopped_reason {
                return Err(KeyPoolError::GeneratorsStopped {
                    reason: reason.clone(),
                });
            }
            let (sender, receiver) = oneshot::channel();
            state.waiters.push_back(sender);
            self.shared.counters.waited.fetch_add(1, Ordering::Relaxed);
            drop(state);
            self.shared.wake_generators.notify_one();
            receiver
        };
        match receiver.await {
            Ok(key) => Ok(key),
            // The sender is dropped without a key only when the last generator stops.
            Err(_) => Err(KeyPoolError::GeneratorsStopped {
                reason: self
                    .shared
                    .lock()
                    .stopped_reason
                    .clone()
                    .unwrap_or_else(|| "generators exited".to_string()),
            }),
        }
    }

    /// A pooled key if one is ready now (a generator then starts refilling); never waits
    /// and never counts as a waiting take.
    pub fn try_take(&self) -> Option<SigningKey> {
        let mut state = self.shared.lock();
        let key = self.pop_ready(&mut state)?;
        drop(state);
        self.shared.wake_generators.notify_one();
        Some(key)
    }

    /// A ready key, taken under the caller's lock and counted as served from the pool.
    fn pop_ready(&self, state: &mut State) -> Option<SigningKey> {
        let key = state.keys.pop_front()?;
        self.shared.counters.record_available(state.keys.len());
        self.shared
            .counters
            .served_from_pool
            .fetch_add(1, Ordering::Relaxed);
        Some(key)
    }

    /// Keys ready now.
    pub fn available(&self) -> usize {
        self.shared.lock().keys.len()
    }

    /// The number of keys the pool refills to.
    pub fn target(&self) -> usize {
        self.shared.target
    }

    /// The pool's counters now.
    pub fn stats(&self) -> KeyPoolStats {
        let state = self.shared.lock();
        KeyPoolStats {
            available: state.keys.len(),
            generating: state.generating,
            ..self.shared.counters.snapshot()
        }
    }

    /// A handle to the counters that outlives the pool.
    pub fn monitor(&self) -> KeyPoolMonitor {
        KeyPoolMonitor {
            counters: Arc::clone(&self.shared.counters),
        }
    }

    /// Stop the generators and wait for them to exit. Blocks for up to one key generation
    /// (a generator finishes the key it is making): call it from a blocking context, not
    /// from an async task. Dropping the pool stops them without waiting.
    pub fn shutdown(mut self) {
        self.signal_shutdown();
        for handle in self.threads.drain(..) {
            // A generator that panicked has already released its waiters (see `ExitGuard`).
            let _ = handle.join();
        }
    }

    fn signal_shutdown(&self) {
        let mut state = self.shared.lock();
        state.shutdown = true;
        // Wipe the pooled keys now rather than when the last generator lets go of `Shared`.
        state.keys.clear();
        self.shared.counters.record_available(0);
        state.waiters.clear();
        drop(state);
        self.shared.wake_generators.notify_all();
    }
}

impl Drop for KeyPool {
    /// Signals the generators and returns without joining them, so dropping a pool inside
    /// an async task never blocks a runtime worker; each generator exits as soon as its
    /// current key (if any) is done.
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}

impl fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPool")
            .field("target", &self.shared.target)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl KeyPoolMonitor {
    /// The counters now. `available` is the last value the pool recorded (0 after drop);
    /// `generating` is not tracked here and reads 0.
    pub fn stats(&self) -> KeyPoolStats {
        self.counters.snapshot()
    }
}

impl fmt::Debug for KeyPoolMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyPoolMonitor")
            .field(&self.stats())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Internals

struct Shared {
    target: usize,
    state: Mutex<State>,
    /// Generators sleep on this until there is demand or shutdown.
    wake_generators: Condvar,
    counters: Arc<Counters>,
}

struct State {
    keys: VecDeque<SigningKey>,
    /// Takes waiting for a key, oldest first. A sender whose receiver is gone belongs to a
    /// cancelled take and is skipped.
    waiters: VecDeque<oneshot::Sender<SigningKey>>,
    /// Keys being generated now.
    generating: usize,
    shutdown: bool,
    /// Set when the last generator exits other than by shutdown.
    stopped_reason: Option<String>,
}

#[derive(Default)]
struct Counters {
    available: AtomicUsize,
    generated: AtomicU64,
    served_from_pool: AtomicU64,
    waited: AtomicU64,
    running_generators: AtomicUsize,
}

impl Counters {
    fn record_available(&self, n: usize) {
        self.available.store(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> KeyPoolStats {
        KeyPoolStats {
            available: self.available.load(Ordering::Relaxed),
            generating: 0,
            generated: self.generated.load(Ordering::Relaxed),
            served_from_pool: self.served_from_pool.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            running_generators: self.running_generators.load(Ordering::SeqCst),
        }
    }
}

impl Shared {
    fn new(target: usize) -> Shared {
        Shared {
            target,
            state: Mutex::new(State {
                keys: VecDeque::with_capacity(target),
                waiters: VecDeque::new(),
                generating: 0,
                shutdown: false,
                stopped_reason: None,
            }),
            wake_generators: Condvar::new(),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The state survives a panicking holder: every update to it is a single push, pop or
    /// counter change, so it is never left half-done.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Whether another key should be started: fewer ready or in progress than the target
    /// plus the live waiters.
    fn wants_key(&mut self, target: usize) -> bool {
        self.waiters.retain(|w| !w.is_closed());
        self.keys.len() + self.generating < target + self.waiters.len()
    }

    /// Give a finished key to the oldest live waiter, or keep it in the pool.
    fn deliver(&mut self, mut key: SigningKey) {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(key) {
                Ok(()) => return,
                Err(returned) => key = returned,
            }
        }
        self.keys.push_back(key);
    }
}

/// Marks a generator's exit, however it happens (including a panic): the last one to go
/// other than by shutdown fails the waiting takes instead of leaving them hanging.
struct ExitGuard {
    shared: Arc<Shared>,
    /// Why the generator stopped; `None` means it panicked.
    reason: Option<String>,
    /// Whether it is counted in `State::generating` (a panic inside key generation).
    in_generation: bool,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if self.in_generation {
            // Panicked mid-generation: that key will never come.
            state.generating -= 1;
        }
        let last = self
            .shared
            .counters
            .running_generators
            .fetch_sub(1, Ordering::SeqCst)
            == 1;
        if last && !state.shutdown {
            let reason = self
                .reason
                .take()
                .unwrap_or_else(|| "a key generator panicked".to_string());
            state.stopped_reason = Some(reason);
            // Dropping the senders wakes every waiting take with an error.
            state.waiters.clear();
        }
    }
}

fn generator_main(shared: Arc<Shared>) {
    let mut guard = ExitGuard {
        shared: Arc::clone(&shared),
        reason: None,
        in_generation: false,
    };
    loop {
        {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    guard.reason = Some("shut down".to_string());
                    return;
                }
                if state.wants_key(shared.target) {
                    break;
                }
                state = shared
                    .wake_generators
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            state.generating += 1;
            guard.in_generation = true;
        }

        let result = SigningKey::generate_rsa(&mut OsRng);

        let mut state = shared.lock();
        state.generating -= 1;
        guard.in_generation = false;
        match result {
            Ok(key) => {
                shared.counters.generated.fetch_add(1, Ordering::Relaxed);
                if state.shutdown {
                    // Nobody can take it any more; dropping wipes it.
                    drop(key);
                    continue;
                }
                state.deliver(key);
                shared.counters.record_available(state.keys.len());
            }
            Err(e) => {
                // Generation with fixed, valid parameters and the OS RNG does not fail;
                // if it does, retrying would fail the same way, so this generator stops.
                tracing::error!(error = %e, "RSA key generation failed; key generator stopping");
                guard.reason = Some(format!("RSA key generation failed: {e}"));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The one path the public API cannot reach: every generator dying (a panic in key
    //! generation, e.g. an OS RNG failure). The behaviour tests are in `tests/keypool.rs`.

    use super::*;

    #[test]
    fn a_panicking_last_generator_fails_waiting_takes_instead_of_hanging() {
        let shared = Arc::new(Shared::new(1));
        let pool = KeyPool {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        let (sender, receiver) = oneshot::channel();
        {
            let mut state = shared.lock();
            state.waiters.push_back(sender);
            state.generating = 1;
        }
        shared
            .counters
            .running_generators
            .fetch_add(1, Ordering::SeqCst);
        let dying = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let _guard = ExitGuard {
                shared: dying,
                reason: None,
                in_generation: true,
            };
            panic!("simulated failure inside key generation");
        });
        assert!(thread.join().is_err());

        // The waiter was released with an error, not left hanging.
        assert!(receiver.blocking_recv().is_err());
        let stats = pool.stats();
        assert_eq!(stats.running_generators, 0);
        assert_eq!(stats.generating, 0);

        // Later takes fail at once with the reason; `try_take` just finds nothing.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        match runtime.block_on(pool.take()) {
            Err(KeyPoolError::GeneratorsStopped { reason }) => {
                assert!(reason.contains("panicked"), "{reason}")
            }
            other => panic!("expected GeneratorsStopped, got {other:?}"),
        }
        assert!(pool.try_take().is_none());
    }
}
