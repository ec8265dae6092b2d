//! Erasure-coding throughput, in MB/s of segment data (`k * piece_len` bytes
//! per call), for the shapes Tahoe uses: 3-of-10 (the default) and 71-of-255.
//!
//! - `fec/{encode,decode}/K-of-N/SEG/auto`: the kernel `Fec::new` picks.  Encode
//!   writes the `n-k` check blocks into preallocated buffers; decode rebuilds
//!   all `k` pieces from the last `k` blocks (the worst case: as many missing
//!   pieces as possible).  `bench/fec/run.sh` compares these with zfec.
//! - `kernels/...`: the same for every kernel this CPU supports.
//!
//! Run: `cargo bench -p cairn-core --bench fec` (or `-- auto`, `-- kernels`).

use std::time::Duration;

use cairn_core::fec::{Fec, Kernel};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SHAPES: [(usize, usize); 2] = [(3, 10), (71, 255)];
const SEGMENTS: [(usize, &str); 2] = [(128 * 1024, "128KiB"), (1024 * 1024, "1MiB")];

struct Setup {
    pieces: Vec<Vec<u8>>,
    checks: Vec<Vec<u8>>,
    out: Vec<Vec<u8>>,
}

fn setup(fec: &Fec, segsize: usize) -> Setup {
    let (k, n) = (fec.k(), fec.n());
    let piece_len = segsize.div_ceil(k);
    let mut x: u32 = 0x1234_5678;
    let pieces: Vec<Vec<u8>> = (0..k)
        .map(|_| {
            (0..piece_len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
    let checks = fec.encode_all(&refs).unwrap().split_off(k);
    assert_eq!(checks.len(), n - k);
    let out = vec![vec![0u8; piece_len]; k];
    Setup {
        pieces,
        checks,
        out,
    }
}

fn bench_shape(c: &mut Criterion, group_name: &str, kernel: Kernel, label: &str) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for &(k, n) in &SHAPES {
        let fec = Fec::with_kernel(k, n, kernel).unwrap();
        for &(segsize, seglabel) in &SEGMENTS {
            let mut s = setup(&fec, segsize);
            let piece_len = s.pieces[0].len();
            group.throughput(Throughput::Bytes((k * piece_len) as u64));
            let shape = format!("{k}-of-{n}/{seglabel}");

            let refs: Vec<&[u8]> = s.pieces.iter().map(|p| &p[..]).collect();
            let mut checks = vec![vec![0u8; piece_len]; n - k];
            let encode = |checks: &mut [Vec<u8>]| {
                let mut outs: Vec<(usize, &mut [u8])> = checks
                    .iter_mut()
                    .enumerate()
                    .map(|(i, c)| (k + i, &mut c[..]))
                    .collect();
                fec.encode(&refs, &mut outs).unwrap();
            };
            encode(&mut checks);
            assert!(checks == s.checks, "encode output differs from encode_all");
            group.bench_function(BenchmarkId::new(format!("encode/{shape}"), label), |b| {
                b.iter(|| encode(&mut checks))
            });

            // Worst case: the last k blocks, i.e. only check blocks when n >= 2k.
            let blocks: Vec<(usize, &[u8])> = (n - k..n)
                .map(|r| {
                    if r < k {
                        (r, &s.pieces[r][..])
                    } else {
                        (r, &s.checks[r - k][..])
                    }
                })
                .collect();
            let decode = |out: &mut [Vec<u8>]| {
                let mut outs: Vec<&mut [u8]> = out.iter_mut().map(|o| &mut o[..]).collect();
                fec.decode(&blocks, &mut outs).unwrap();
            };
            decode(&mut s.out);
            assert!(s.out == s.pieces, "decode did not give back the pieces");
            group.bench_function(BenchmarkId::new(format!("decode/{shape}"), label), |b| {
                b.iter(|| decode(&mut s.out))
            });
        }
    }
    group.finish();
}

fn auto(c: &mut Criterion) {
    bench_shape(c, "fec", Kernel::best(), "auto");
}

fn kernels(c: &mut Criterion) {
    for kernel in Kernel::available() {
        bench_shape(c, "kernels", kernel, kernel.name());
    }
}

criterion_group!(benches, auto, kernels);
criterion_main!(benches);
