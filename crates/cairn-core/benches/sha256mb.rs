//! Multi-buffer SHA-256 kernels (`cairn_core::sha256mb`) against single-stream `sha2`.
//!
//! Prints aggregate MB/s (bytes of all lanes / time) for:
//! - `sha2` single stream, one message after another;
//! - every available kernel forced, on exactly its own lane count, 1 MiB per lane;
//! - the CHK shapes: 10 lanes (3-of-10 blocks) and 3 lanes (the blocks a 3-of-10 download
//!   verifies), 349,526 bytes per lane (a 1 MiB segment's block) fed in 8 KiB chunks as
//!   the encoder does, each kernel forced and the automatic plan.
//!
//! Run: `cargo bench -p cairn-core --bench sha256mb -- --summary` (criterion groups
//! `sha256mb/...` without `--summary`).

mod common;

use std::hint::black_box;
use std::time::Duration;

use cairn_core::hashutil::tags;
use cairn_core::sha256mb::{Kernel, Sha256Lanes, TaggedLanes};
use cairn_test_support::data;
use common::best_of;
use criterion::{Criterion, Throughput};
use sha2::{Digest, Sha256};

const MB: f64 = 1e6;
const BLOCK: usize = 349_526;

fn lanes_once(kernel: Option<Kernel>, msgs: &[Vec<u8>], chunk: usize) -> Vec<[u8; 32]> {
    let mut h = match kernel {
        Some(k) => TaggedLanes::with_kernel(tags::BLOCK, msgs.len(), k).unwrap(),
        None => TaggedLanes::new(tags::BLOCK, msgs.len()),
    };
    let len = msgs[0].len();
    let mut pos = 0;
    while pos < len {
        let end = (pos + chunk).min(len);
        let parts: Vec<&[u8]> = msgs.iter().map(|m| &m[pos..end]).collect();
        h.update_lanes(&parts);
        pos = end;
    }
    h.finish()
}

fn mbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / MB
}

fn summary() {
    let runs = 7;
    let big: Vec<Vec<u8>> = (0..16).map(|i| data::bytes(1 << 20, i)).collect();
    let t = best_of(runs, || {
        for m in &big {
            black_box(Sha256::digest(m));
        }
    });
    println!(
        "sha2 single stream (1 MiB messages, one after another): {:8.0} MB/s",
        mbps(16 << 20, t)
    );
    println!("kernel on its own lane count, 1 MiB per lane:");
    for k in Kernel::available() {
        let msgs = &big[..k.lanes()];
        let t = best_of(runs, || {
            let mut h = Sha256Lanes::with_kernel(msgs.len(), k).unwrap();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            h.update_lanes(&refs);
            black_box(h.finish());
        });
        println!(
            "  {:10} x{:2}: {:8.0} MB/s",
            k.name(),
            k.lanes(),
            mbps(msgs.len() << 20, t)
        );
    }
    for l in (1..=6).filter(|_| Kernel::ShaNi.is_available()) {
        let msgs = &big[..l];
        let t = best_of(runs, || {
            let mut h = Sha256Lanes::with_kernel(msgs.len(), Kernel::ShaNi).unwrap();
            let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            h.update_lanes(&refs);
            black_box(h.finish());
        });
        println!("  sha-ni x{l}: {:8.0} MB/s", mbps(msgs.len() << 20, t));
    }
    for lanes in [10usize, 3] {
        let msgs: Vec<Vec<u8>> = (0..lanes).map(|i| data::bytes(BLOCK, i as u64)).collect();
        println!(
            "{lanes} block hashes of {BLOCK} bytes, 8 KiB chunks (CHK 3-of-10, 1 MiB segments):"
        );
        let t = best_of(runs, || {
            for m in &msgs {
                black_box(cairn_core::hashutil::block_hash(m));
            }
        });
        println!(
            "  {:16}: {:8.0} MB/s",
            "hashutil (serial)",
            mbps(lanes * BLOCK, t)
        );
        let mut kernels: Vec<Option<Kernel>> = Kernel::available().into_iter().map(Some).collect();
        kernels.push(None);
        for k in kernels {
            let t = best_of(runs, || {
                black_box(lanes_once(k, &msgs, 8192));
            });
            let t1 = best_of(runs, || {
                black_box(lanes_once(k, &msgs, usize::MAX));
            });
            let name = k.map_or("auto", |k| k.name());
            println!(
                "  {name:16}: {:8.0} MB/s  (one update: {:8.0} MB/s)",
                mbps(lanes * BLOCK, t),
                mbps(lanes * BLOCK, t1)
            );
        }
    }
}

fn criterion_groups(c: &mut Criterion) {
    let msgs: Vec<Vec<u8>> = (0..10).map(|i| data::bytes(BLOCK, i)).collect();
    let mut g = c.benchmark_group("sha256mb");
    g.throughput(Throughput::Bytes((10 * BLOCK) as u64));
    g.sample_size(20);
    g.bench_function("serial/10x341KiB", |b| {
        b.iter(|| {
            msgs.iter()
                .map(|m| cairn_core::hashutil::block_hash(m))
                .collect::<Vec<_>>()
        })
    });
    for k in Kernel::available() {
        g.bench_function(format!("{}/10x341KiB", k.name()), |b| {
            b.iter(|| lanes_once(Some(k), &msgs, 8192))
        });
    }
    g.bench_function("auto/10x341KiB", |b| {
        b.iter(|| lanes_once(None, &msgs, 8192))
    });
    g.finish();
}

fn main() {
    common::main(summary, criterion_groups);
}
