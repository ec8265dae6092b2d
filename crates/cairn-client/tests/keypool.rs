//! The background RSA key pool (`cairn_client::keypool`).
//!
//! Every key here is a real RSA-2048 generation (tens to hundreds of milliseconds each even
//! with the workspace's optimised test profile), so pools are kept at 0-3 keys and waits are
//! polls with generous deadlines rather than fixed sleeps. Behaviour is asserted through the
//! pool's counters, never through timing.

use std::collections::HashSet;
use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

use cairn_client::keypool::{KeyPool, KeyPoolConfig, KeyPoolError, KeyPoolStats};
use cairn_core::mutable::keys::{SigningKey, RSA_KEY_BITS};
use rand::rngs::OsRng;

/// Longest any test waits for a pool to reach a state (debug builds on a loaded 2-core box
/// can take seconds per key).
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(10);

fn pool(target: usize) -> KeyPool {
    KeyPool::with_config(KeyPoolConfig {
        target,
        generators: 1,
    })
    .expect("valid config")
}

/// Poll `stats` until `done` holds, failing the test after [`DEADLINE`].
fn wait_for(
    stats: impl Fn() -> KeyPoolStats,
    done: impl Fn(&KeyPoolStats) -> bool,
) -> KeyPoolStats {
    let start = Instant::now();
    loop {
        let s = stats();
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "pool never reached the state; last {s:?}"
        );
        std::thread::sleep(POLL);
    }
}

/// The key is a 2048-bit RSA key Tahoe would load, and it signs and verifies.
fn assert_valid(key: &SigningKey) {
    // `from_pkcs8_der` is Tahoe's loading rule: it refuses anything but a consistent
    // 2048-bit RSA key.
    SigningKey::from_pkcs8_der(key.pkcs8_der()).expect("a loadable 2048-bit key");
    let verifying = key.verifying_key();
    let message = b"cairn key pool";
    let signature = key.sign(&mut OsRng, message).expect("sign");
    assert_eq!(signature.len(), RSA_KEY_BITS / 8);
    verifying.verify(message, &signature).expect("verifies");
    assert!(verifying.verify(b"another message", &signature).is_err());
}

#[tokio::test]
async fn take_from_a_warm_pool_is_served_from_the_pool() {
    let pool = pool(2);
    wait_for(|| pool.stats(), |s| s.available == 2);

    let start = Instant::now();
    let key = pool.take().await.expect("key");
    let took = start.elapsed();
    println!("take from a warm pool: {took:?}");

    let stats = pool.stats();
    assert_eq!(stats.served_from_pool, 1);
    assert_eq!(stats.waited, 0);
    assert_valid(&key);

    // `try_take` also serves from the pool.
    let second = pool.try_take().expect("second pooled key");
    assert_eq!(pool.stats().served_from_pool, 2);
    assert_eq!(pool.stats().waited, 0);
    assert_ne!(key.pkcs8_der(), second.pkcs8_der());
}

#[tokio::test]
async fn take_from_an_empty_pool_waits_for_the_next_key() {
    // Target 0: the pool never holds a key, so the take is certain to find it empty.
    let pool = pool(0);
    assert!(pool.try_take().is_none());
    assert_eq!(
        pool.stats().generated,
        0,
        "target 0 generates nothing unasked"
    );

    let key = pool.take().await.expect("key");
    assert_valid(&key);
    let stats = pool.stats();
    assert_eq!(stats.waited, 1);
    assert_eq!(stats.served_from_pool, 0);
    assert_eq!(stats.generated, 1);
    assert_eq!(stats.available, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_takes_never_generate_beyond_the_generator_count() {
    let pool = std::sync::Arc::new(pool(0));
    let takers: Vec<_> = (0..2)
        .map(|_| {
            let pool = std::sync::Arc::clone(&pool);
            tokio::spawn(async move { pool.take().await })
        })
        .collect();
    // While both wait, one generator makes at most one key at a time.
    let mut max_generating = 0;
    while !takers.iter().all(|t| t.is_finished()) {
        max_generating = max_generating.max(pool.stats().generating);
        tokio::time::sleep(POLL).await;
    }
    let mut keys = Vec::new();
    for t in takers {
        keys.push(t.await.expect("task").expect("key"));
    }
    assert_eq!(max_generating, 1);
    assert_ne!(keys[0].pkcs8_der(), keys[1].pkcs8_der());
    let stats = pool.stats();
    assert_eq!(stats.waited, 2);
    assert_eq!(stats.generated, 2);
}

#[tokio::test]
async fn the_pool_refills_to_target_after_takes() {
    let target = 2;
    let pool = pool(target);
    wait_for(|| pool.stats(), |s| s.available == target);

    let taken = 2;
    let mut keys = Vec::new();
    for _ in 0..taken {
        keys.push(pool.take().await.expect("key"));
    }
    let stats = wait_for(
        || pool.stats(),
        |s| s.available == target && s.generating == 0,
    );
    assert_eq!(stats.generated, (target + taken) as u64);
    assert_eq!(stats.served_from_pool + stats.waited, taken as u64);

    // No more than the target is ever made while nobody takes.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(pool.stats().generated, (target + taken) as u64);
    assert_eq!(pool.available(), target);
}

#[tokio::test]
async fn keys_are_distinct_valid_2048_bit_keys() {
    let pool = pool(3);
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let key = pool.take().await.expect("key");
        assert_valid(&key);
        assert!(
            seen.insert(key.verifying_key().spki_der().to_vec()),
            "duplicate key"
        );
    }
    // A signature by one key does not verify under another.
    let a = pool.take().await.expect("key");
    let b = pool.take().await.expect("key");
    let signature = a.sign(&mut OsRng, b"m").expect("sign");
    assert!(b.verifying_key().verify(b"m", &signature).is_err());
}

#[tokio::test]
async fn a_cancelled_take_leaves_its_key_in_the_pool() {
    let pool = pool(0);
    let mut take = Box::pin(pool.take());
    // Poll once so the take queues as a waiter and a generator starts on its behalf.
    std::future::poll_fn(|cx| {
        assert!(
            take.as_mut().poll(cx).is_pending(),
            "target 0 has no key ready"
        );
        Poll::Ready(())
    })
    .await;
    assert_eq!(pool.stats().waited, 1);
    let started = wait_for(|| pool.stats(), |s| s.generating == 1 || s.generated == 1);
    // Cancel the take while its key is being made.
    drop(take);

    // The generation finishes and, having no live waiter, goes to the pool.
    let stats = wait_for(|| pool.stats(), |s| s.generated == 1 && s.generating == 0);
    if started.generated == 0 {
        assert_eq!(stats.available, 1);
        let key = pool.try_take().expect("the orphaned key");
        assert_valid(&key);
    } else {
        // The key was handed to the take before it was cancelled (a generation faster than
        // one poll interval): it was wiped with the take, and nothing else is made.
        assert_eq!(stats.available, 0);
    }
}

#[test]
fn a_take_cancelled_before_generation_starts_asks_for_nothing() {
    // A generator only starts for live waiters: one whose take is already gone when the
    // generator looks is skipped, so target 0 generates nothing.
    let pool = pool(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // The timer must be made inside the runtime, hence the async block.
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::ZERO, pool.take()).await });
    assert_eq!(pool.stats().waited, 1);
    std::thread::sleep(Duration::from_millis(300));
    let stats = pool.stats();
    // Either the generator saw the cancelled waiter (nothing made) or it had already
    // started a key, which then lands in the pool; never more than one.
    assert!(stats.generated + stats.generating as u64 <= 1, "{stats:?}");
}

#[test]
fn dropping_the_pool_stops_generation() {
    let pool = pool(3);
    let monitor = pool.monitor();
    // Drop while the first key is (almost certainly) being generated.
    drop(pool);

    // The generator exits after finishing at most the key it was making.
    let stats = wait_for(|| monitor.stats(), |s| s.running_generators == 0);
    assert!(
        stats.generated <= 1,
        "kept generating after drop: {stats:?}"
    );
    assert_eq!(stats.available, 0, "pooled keys are wiped on drop");

    // And nothing is generated afterwards.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(monitor.stats().generated, stats.generated);
}

#[test]
fn dropping_a_full_pool_stops_idle_generators_at_once() {
    let pool = pool(1);
    let monitor = pool.monitor();
    wait_for(|| monitor.stats(), |s| s.available == 1);
    // The generator is asleep waiting for demand: it wakes and exits without another key.
    drop(pool);
    let stats = wait_for(|| monitor.stats(), |s| s.running_generators == 0);
    assert_eq!(stats.generated, 1);
}

#[test]
fn shutdown_joins_the_generators() {
    let pool = KeyPool::with_config(KeyPoolConfig {
        target: 2,
        generators: 2,
    })
    .expect("valid config");
    let monitor = pool.monitor();
    assert_eq!(monitor.stats().running_generators, 2);
    pool.shutdown();
    // Joined: no thread is left when `shutdown` returns.
    let stats = monitor.stats();
    assert_eq!(stats.running_generators, 0);
    assert!(stats.generated <= 2, "{stats:?}");
}

#[test]
fn invalid_configs_are_refused() {
    let zero = KeyPool::with_config(KeyPoolConfig {
        target: 1,
        generators: 0,
    });
    assert!(matches!(zero, Err(KeyPoolError::InvalidConfig(_))));
    let huge = KeyPool::with_config(KeyPoolConfig {
        target: usize::MAX,
        generators: 1,
    });
    assert!(matches!(huge, Err(KeyPoolError::InvalidConfig(_))));
}

#[test]
fn debug_output_shows_no_key_material() {
    let pool = pool(1);
    wait_for(|| pool.stats(), |s| s.available == 1);
    let printed = format!("{pool:?}");
    assert!(printed.contains("available: 1"), "{printed}");
    let key = pool.try_take().expect("key");
    let printed = format!("{key:?}");
    assert!(printed.contains("redacted"), "{printed}");
}

/// Key generation time, for the module docs and the note. Run with
/// `cargo test --release -j2 -p cairn-client --test keypool -- --ignored --nocapture keygen_time`.
#[test]
#[ignore = "measurement: generates 20 keys"]
fn keygen_time() {
    let n = 20;
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let key = SigningKey::generate_rsa(&mut OsRng).expect("key");
            let took = start.elapsed();
            drop(key);
            took
        })
        .collect();
    times.sort();
    println!(
        "RSA-2048 keygen over {n} keys: min {:?}, median {:?}, max {:?}",
        times[0],
        times[n / 2],
        times[n - 1]
    );

    // And the pool's answer on the common path: a take from a warm pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let pool = pool(4);
    wait_for(|| pool.stats(), |s| s.available == 4);
    let start = Instant::now();
    let key = runtime.block_on(pool.take()).expect("key");
    println!("take from a warm pool: {:?}", start.elapsed());
    drop(key);
    assert_eq!(pool.stats().served_from_pool, 1);
}
