//! RSA-2048 (e = 65537) key generation speed of the candidate libraries for cairn's key pool,
//! and whether their keys load into cairn's own key type.
//!
//! Usage: keygen-bench [--keys N] [--threads T] [--libs rsa,aws-lc-rs,openssl,rsa-0.10] [--no-parallel]
//!
//! - One thread: N keys per library, interleaved one key at a time (the order is rotated
//!   every round), so machine noise falls on all libraries alike.
//! - T threads (default 2): per library N keys in total, made in alternating batches: in a
//!   batch every thread makes 2 keys of one library at once, then the next library's batch.
//!   Aggregate keys/s = keys / summed batch wall time (a batch ends when its slowest thread
//!   does, so this slightly under-states free-running generator threads).
//! - Every key made on one thread is exported to DER (PKCS#8, and PKCS#1 for openssl) and
//!   loaded with `cairn_core::mutable::keys::SigningKey::from_pkcs8_der` / `from_pkcs1_der`
//!   (cairn's loading rule: 2048 bits, consistent CRT values), then checked with the `rsa`
//!   crate (`RsaPrivateKey::from_pkcs8_der`/`from_pkcs1_der`, `validate`, e = 65537,
//!   2048-bit n, two factors, both prime by OpenSSL's `BN_check_prime` when the `openssl`
//!   feature is built). The first key of each library also signs and verifies through cairn.

use std::time::{Duration, Instant};

use cairn_core::mutable::keys::SigningKey;
use rand::rngs::OsRng;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey};

const BITS: usize = 2048;
const E: u32 = 65537;
/// Keys each thread makes per batch in the multi-thread phase.
const BATCH_PER_THREAD: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lib {
    /// RustCrypto `rsa`, the call cairn makes today (`SigningKey::generate_rsa`).
    RustCrypto,
    #[cfg(feature = "aws-lc")]
    AwsLc,
    #[cfg(feature = "openssl")]
    OpenSsl,
    /// RustCrypto `rsa` 0.10 (not what cairn uses; for comparison).
    #[cfg(feature = "rsa010")]
    Rsa010,
}

impl Lib {
    fn all() -> Vec<Lib> {
        vec![
            Lib::RustCrypto,
            #[cfg(feature = "aws-lc")]
            Lib::AwsLc,
            #[cfg(feature = "openssl")]
            Lib::OpenSsl,
            #[cfg(feature = "rsa010")]
            Lib::Rsa010,
        ]
    }

    fn name(self) -> &'static str {
        match self {
            Lib::RustCrypto => "rsa",
            #[cfg(feature = "aws-lc")]
            Lib::AwsLc => "aws-lc-rs",
            #[cfg(feature = "openssl")]
            Lib::OpenSsl => "openssl",
            #[cfg(feature = "rsa010")]
            Lib::Rsa010 => "rsa-0.10",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Pkcs8,
    Pkcs1,
}

/// Key material handed out of a generator, already DER-encoded.
struct Exported {
    format: Format,
    der: Vec<u8>,
}

struct Generated {
    gen: Duration,
    /// Time to export the key to DER (all formats below).
    export: Duration,
    ders: Vec<Exported>,
}

/// Make one key with `lib`; only the generation call itself is in `gen`.
fn generate(lib: Lib, export: bool) -> Generated {
    match lib {
        Lib::RustCrypto => {
            let t = Instant::now();
            // Same call as cairn_core::mutable::keys::SigningKey::generate_rsa, same RNG as
            // the key pool (rand::rngs::OsRng).
            let key = RsaPrivateKey::new_with_exp(&mut OsRng, BITS, &BigUint::from(E))
                .expect("rsa keygen");
            let gen = t.elapsed();
            let t = Instant::now();
            let ders = if export {
                vec![Exported {
                    format: Format::Pkcs8,
                    der: key.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(),
                }]
            } else {
                vec![]
            };
            Generated {
                gen,
                export: t.elapsed(),
                ders,
            }
        }
        #[cfg(feature = "aws-lc")]
        Lib::AwsLc => {
            use aws_lc_rs::encoding::AsDer;
            use aws_lc_rs::rsa::{KeyPair, KeySize};
            let t = Instant::now();
            // AWS-LC's EVP RSA keygen; its default public exponent is 65537 (checked below).
            let key = KeyPair::generate(KeySize::Rsa2048).expect("aws-lc keygen");
            let gen = t.elapsed();
            let t = Instant::now();
            let ders = if export {
                vec![Exported {
                    format: Format::Pkcs8,
                    der: key.as_der().expect("pkcs8").as_ref().to_vec(),
                }]
            } else {
                vec![]
            };
            Generated {
                gen,
                export: t.elapsed(),
                ders,
            }
        }
        #[cfg(feature = "openssl")]
        Lib::OpenSsl => {
            use openssl::bn::BigNum;
            use openssl::pkey::PKey;
            use openssl::rsa::Rsa;
            let e = BigNum::from_u32(E).expect("bignum");
            let t = Instant::now();
            let key = Rsa::generate_with_e(BITS as u32, &e).expect("openssl keygen");
            let gen = t.elapsed();
            let t = Instant::now();
            let ders = if export {
                let pkcs1 = key.private_key_to_der().expect("pkcs1");
                let pkcs8 = PKey::from_rsa(key)
                    .expect("pkey")
                    .private_key_to_pkcs8()
                    .expect("pkcs8");
                vec![
                    Exported {
                        format: Format::Pkcs1,
                        der: pkcs1,
                    },
                    Exported {
                        format: Format::Pkcs8,
                        der: pkcs8,
                    },
                ]
            } else {
                vec![]
            };
            Generated {
                gen,
                export: t.elapsed(),
                ders,
            }
        }
        #[cfg(feature = "rsa010")]
        Lib::Rsa010 => {
            use rsa010::pkcs8::EncodePrivateKey as _;
            let t = Instant::now();
            // Same parameters; the OS RNG (getrandom's SysRng, what 0.10's `generate()` uses,
            // but that one makes 3072-bit keys).
            let key = rsa010::PrivateKey::new_with_exp(
                &mut getrandom04::SysRng,
                BITS,
                rsa010::BoxedUint::from(u64::from(E)),
            )
            .expect("rsa 0.10 keygen");
            let gen = t.elapsed();
            let t = Instant::now();
            let ders = if export {
                vec![Exported {
                    format: Format::Pkcs8,
                    der: key.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(),
                }]
            } else {
                vec![]
            };
            Generated {
                gen,
                export: t.elapsed(),
                ders,
            }
        }
    }
}

#[derive(Default)]
struct ConvStats {
    /// (format, time to load into cairn's SigningKey)
    loads: Vec<(Format, Duration)>,
    ok: usize,
    failed: Vec<String>,
    /// PKCS#8 exports byte-identical to what cairn re-encodes (`SigningKey::pkcs8_der`).
    pkcs8_identical: usize,
    pkcs8_seen: usize,
}

/// Load `ex` the way cairn does and check the result; returns the load time.
fn convert(ex: &Exported, sign_check: bool) -> Result<(Duration, bool), String> {
    let t = Instant::now();
    let sk = match ex.format {
        Format::Pkcs8 => SigningKey::from_pkcs8_der(&ex.der),
        Format::Pkcs1 => SigningKey::from_pkcs1_der(&ex.der),
    }
    .map_err(|e| format!("cairn SigningKey refused {:?}: {e}", ex.format))?;
    let load = t.elapsed();

    let key = match ex.format {
        Format::Pkcs8 => RsaPrivateKey::from_pkcs8_der(&ex.der).map_err(|e| e.to_string())?,
        Format::Pkcs1 => RsaPrivateKey::from_pkcs1_der(&ex.der).map_err(|e| e.to_string())?,
    };
    key.validate().map_err(|e| format!("validate: {e}"))?;
    if key.e() != &BigUint::from(E) {
        return Err(format!("public exponent {} != {E}", key.e()));
    }
    if key.n().bits() != BITS {
        return Err(format!("modulus {} bits", key.n().bits()));
    }
    if key.primes().len() != 2 {
        return Err(format!("{} primes", key.primes().len()));
    }
    // Independent primality check of p and q (OpenSSL's BN_check_prime), when built in.
    #[cfg(feature = "openssl")]
    {
        let mut ctx = openssl::bn::BigNumContext::new().map_err(|e| e.to_string())?;
        for p in key.primes() {
            let bn =
                openssl::bn::BigNum::from_slice(&p.to_bytes_be()).map_err(|e| e.to_string())?;
            if !bn.is_prime(0, &mut ctx).map_err(|e| e.to_string())? {
                return Err("a factor is not prime".into());
            }
        }
    }
    if ex.format == Format::Pkcs1 {
        // The rsa crate re-encodes PKCS#1 identically?  (informative only)
        let _ = key.to_pkcs1_der().map_err(|e| e.to_string())?;
    }
    if sign_check {
        let msg = b"cairn keygen bench";
        let sig = sk.sign(&mut OsRng, msg).map_err(|e| format!("sign: {e}"))?;
        sk.verifying_key()
            .verify(msg, &sig)
            .map_err(|_| "signature did not verify".to_string())?;
    }
    let identical = ex.format == Format::Pkcs8 && sk.pkcs8_der() == &ex.der[..];
    Ok((load, identical))
}

struct Stats {
    n: usize,
    median: f64,
    p10: f64,
    p90: f64,
    min: f64,
    max: f64,
    mean: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentiles; the median of an even count is the mean of the middle two.
fn stats(durations: &[Duration]) -> Stats {
    let mut v: Vec<f64> = durations.iter().map(|d| ms(*d)).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    assert!(n > 0);
    let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        n,
        median,
        p10: rank(0.10),
        p90: rank(0.90),
        min: v[0],
        max: v[n - 1],
        mean: v.iter().sum::<f64>() / n as f64,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

struct Args {
    keys: usize,
    threads: usize,
    libs: Vec<Lib>,
    parallel: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        keys: 40,
        threads: 2,
        libs: Lib::all(),
        parallel: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--keys" => args.keys = it.next().and_then(|v| v.parse().ok()).expect("--keys N"),
            "--threads" => {
                args.threads = it.next().and_then(|v| v.parse().ok()).expect("--threads T")
            }
            "--no-parallel" => args.parallel = false,
            "--libs" => {
                let list = it.next().expect("--libs a,b");
                args.libs = list
                    .split(',')
                    .map(|name| {
                        *Lib::all()
                            .iter()
                            .find(|l| l.name() == name)
                            .unwrap_or_else(|| panic!("unknown or not built: {name}"))
                    })
                    .collect();
            }
            "-h" | "--help" => {
                println!(
                    "keygen-bench [--keys N (40)] [--threads T (2)] [--libs {}] [--no-parallel]",
                    Lib::all()
                        .iter()
                        .map(|l| l.name())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.keys > 0 && args.threads > 0 && !args.libs.is_empty());
    args
}

fn header(last: &str) {
    println!(
        "{:<10} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "library", "n", "median", "p10", "p90", "min", "max", "mean", last
    );
}

fn row(lib: Lib, s: &Stats, rate: f64) {
    println!(
        "{:<10} {:>4} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.2}",
        lib.name(),
        s.n,
        s.median,
        s.p10,
        s.p90,
        s.min,
        s.max,
        s.mean,
        rate
    );
}

fn main() {
    let args = parse_args();
    let libs = args.libs.clone();
    let nl = libs.len();
    println!(
        "RSA-{BITS} e={E} keygen: {} keys per library; libraries: {}",
        args.keys,
        libs.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
    );
    #[cfg(feature = "openssl")]
    println!("openssl runtime: {}", openssl::version::version());
    println!("load average at start: {}", loadavg());

    // Warm-up: one key each, not counted.
    for &lib in &libs {
        let _ = generate(lib, true);
    }

    // ---- one thread, interleaved one key at a time ----
    let mut gen: Vec<Vec<Duration>> = vec![Vec::new(); nl];
    let mut export: Vec<Vec<Duration>> = vec![Vec::new(); nl];
    let mut conv: Vec<ConvStats> = (0..nl).map(|_| ConvStats::default()).collect();
    let t_all = Instant::now();
    for round in 0..args.keys {
        for j in 0..nl {
            let i = (round + j) % nl;
            let g = generate(libs[i], true);
            gen[i].push(g.gen);
            export[i].push(g.export);
            // Conversion is outside the timed generation; done for every key.
            for ex in &g.ders {
                let c = &mut conv[i];
                match convert(ex, round == 0) {
                    Ok((load, identical)) => {
                        c.ok += 1;
                        c.loads.push((ex.format, load));
                        if ex.format == Format::Pkcs8 {
                            c.pkcs8_seen += 1;
                            c.pkcs8_identical += identical as usize;
                        }
                    }
                    Err(e) => c.failed.push(e),
                }
            }
        }
    }
    println!(
        "\n== 1 thread (interleaved, {:.1} s wall) — ms per key; last column keys/s = n / sum ==",
        t_all.elapsed().as_secs_f64()
    );
    header("keys/s");
    for (i, &lib) in libs.iter().enumerate() {
        let s = stats(&gen[i]);
        row(lib, &s, 1e3 / s.mean);
    }

    println!("\n== conversion into cairn's key type (every key above; ms) ==");
    println!(
        "{:<10} {:<7} {:>6} {:>13} {:>13} {:>11} {:>8} {:>18}",
        "library",
        "format",
        "ok",
        "export median",
        "load median",
        "load max",
        "failed",
        "pkcs8 == cairn's"
    );
    for (i, &lib) in libs.iter().enumerate() {
        let c = &conv[i];
        let e = stats(&export[i]);
        for fmt in [Format::Pkcs8, Format::Pkcs1] {
            let loads: Vec<Duration> = c
                .loads
                .iter()
                .filter(|(f, _)| *f == fmt)
                .map(|(_, d)| *d)
                .collect();
            if loads.is_empty() {
                continue;
            }
            let l = stats(&loads);
            println!(
                "{:<10} {:<7} {:>6} {:>13.3} {:>13.3} {:>11.3} {:>8} {:>18}",
                lib.name(),
                format!("{fmt:?}"),
                loads.len(),
                e.median,
                l.median,
                l.max,
                c.failed.len(),
                if fmt == Format::Pkcs8 {
                    format!("{}/{}", c.pkcs8_identical, c.pkcs8_seen)
                } else {
                    "-".into()
                }
            );
        }
        for f in c.failed.iter().take(3) {
            println!("  {} FAILED: {f}", lib.name());
        }
    }
    println!("(export = all formats listed for that library together; load = cairn SigningKey::from_pkcs8_der / from_pkcs1_der)");

    // ---- T threads, alternating batches ----
    if args.parallel {
        let t = args.threads;
        let per_batch = t * BATCH_PER_THREAD;
        let batches = args.keys.div_ceil(per_batch);
        let mut keys: Vec<Vec<Duration>> = vec![Vec::new(); nl];
        let mut wall: Vec<Duration> = vec![Duration::ZERO; nl];
        let t_all = Instant::now();
        for b in 0..batches {
            for j in 0..nl {
                let i = (b + j) % nl;
                let lib = libs[i];
                let barrier = std::sync::Barrier::new(t + 1);
                let (elapsed, per_key) = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..t)
                        .map(|_| {
                            let barrier = &barrier;
                            s.spawn(move || {
                                barrier.wait();
                                (0..BATCH_PER_THREAD)
                                    .map(|_| generate(lib, false).gen)
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    barrier.wait();
                    let start = Instant::now();
                    let per_key: Vec<Duration> = handles
                        .into_iter()
                        .flat_map(|h| h.join().unwrap())
                        .collect();
                    (start.elapsed(), per_key)
                });
                wall[i] += elapsed;
                keys[i].extend(per_key);
            }
        }
        println!(
            "\n== {t} threads (batches of {BATCH_PER_THREAD} keys per thread, {:.1} s wall) — ms per key; last column aggregate keys/s = keys / batch wall time ==",
            t_all.elapsed().as_secs_f64()
        );
        header("agg k/s");
        for (i, &lib) in libs.iter().enumerate() {
            let s = stats(&keys[i]);
            row(lib, &s, keys[i].len() as f64 / wall[i].as_secs_f64());
        }
    }
    println!("\nload average at end: {}", loadavg());
}
