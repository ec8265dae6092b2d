//! Multi-buffer SHA-256: many independent messages hashed at once.
//!
//! Tahoe's CHK format hashes every share's block of every segment separately
//! (`block_hash`, tagged SHA-256d). The `N` blocks of a segment are independent and of
//! equal length, so they can be hashed side by side, one message per "lane" of a SIMD
//! kernel or interleaved on the SHA extensions. One SHA-256 stream is serial (each
//! 64-byte block needs the previous one's result), so on a single message none of this
//! helps; on `N` messages at once it is several times faster than hashing them in turn.
//!
//! - [`sha256_many`], [`tagged_hash_many`], [`block_hashes`]: one-shot, any lengths.
//! - [`Sha256Lanes`], [`TaggedLanes`]: streaming, fed one chunk per lane at a time with
//!   [`TaggedLanes::update_lanes`]; the encoder feeds each share's block as the erasure
//!   code produces it. Chunks of equal length per call keep every lane in step (the fast
//!   path); unequal ones are accepted and cost more calls into the kernels.
//!
//! Every kernel computes the same function ([`Kernel`]); [`Kernel::best`] and the
//! planner choose by CPU features and by the figures below. Results equal `sha2`'s
//! byte for byte (property tests in `tests/sha256mb_props.rs`).
//!
//! Measured figures (aggregate MB/s over all lanes, 1 MiB per lane, best of runs,
//! `cargo bench -p cairn-core --bench sha256mb -- --summary`), AMD EPYC (Zen 4) VM with
//! 2 vCPUs, which has AVX-512 and the SHA extensions:
//!
//! | kernel                  | lanes | MB/s |
//! |-------------------------|------:|-----:|
//! | scalar (`sha2`, SHA-NI) |     1 | 1800 |
//! | scalar (`sha2`, soft)   |     1 |  360 |
//! | SHA-NI ×2 interleaved   |     2 | 2990 |
//! | SHA-NI ×3 interleaved   |     3 | 2850 |
//! | AVX2                    |     8 | 1410 |
//! | AVX-512VL               |     8 | 2030 |
//! | AVX-512                 |    16 | 2560 |
//!
//! On the CHK shape (10 block hashes of 349,526 bytes fed in 8 KiB chunks) the planner's
//! choice runs at 2430 MB/s against 1820 MB/s hashing the blocks one after another, and
//! `cargo bench -p cairn-core --bench chk -- --summary` encodes at 386 MB/s, 137 % of the
//! single-stream limit (281 MB/s = SHA-256 speed / 6.33 hashed bytes per plaintext byte).
//! The AVX kernels are for CPUs without the SHA extensions (the soft single stream there is
//! ~360 MB/s, so AVX2's 8 lanes are the ~4x); on this one SHA-NI interleaving wins.

use crate::hashutil::{Hash, HASH_LEN};
use crate::netstring;

#[cfg(target_arch = "x86_64")]
mod x86;

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
#[allow(dead_code)]
const K32: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 initial chaining value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An implementation of the SHA-256 compression function over several lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// One lane at a time through `sha2`'s compression function (which itself uses the
    /// SHA extensions when the CPU has them, else portable code). Always available.
    Scalar,
    /// x86-64 SHA extensions, up to three lanes interleaved.
    ShaNi,
    /// x86-64 AVX2, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F + VL on 256-bit vectors (rotate and ternary-logic instructions), 8 lanes.
    Avx512Vl,
    /// x86-64 AVX-512F on 512-bit vectors, 16 lanes.
    Avx512,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 5] = [
        Kernel::Scalar,
        Kernel::ShaNi,
        Kernel::Avx2,
        Kernel::Avx512Vl,
        Kernel::Avx512,
    ];

    /// A short name, e.g. for benchmark labels.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::ShaNi => "sha-ni",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512Vl => "avx512vl",
            Kernel::Avx512 => "avx512",
        }
    }

    /// Messages one call of this kernel compresses side by side.
    pub fn lanes(self) -> usize {
        match self {
            Kernel::Scalar => 1,
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => x86::SHANI_LANES,
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::ShaNi => 2,
            Kernel::Avx2 | Kernel::Avx512Vl => 8,
            Kernel::Avx512 => 16,
        }
    }

    /// Whether this kernel can run on this CPU (runtime detection).
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            other => x86::is_available(other),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The kernels this CPU can run.
    pub fn available() -> Vec<Kernel> {
        Self::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// Time of one call compressing one block in each of `used` lanes, in ns per
    /// 64-byte block-step as measured on the machine of the table above (figures from
    /// the table: bytes per call / MB/s). A vector kernel costs the same however many of
    /// its lanes are used; SHA-NI interleaves exactly the lanes it is given. The planner
    /// minimises the sum over the calls it makes.
    fn cost(self, used: usize) -> u32 {
        match self {
            // sha2 uses SHA-NI itself when the CPU has it (the planner then prefers ShaNi)
            Kernel::Scalar if Kernel::ShaNi.is_available() => 36,
            Kernel::Scalar => 178,
            Kernel::ShaNi => [36, 36, 52][used.clamp(1, 3) - 1],
            Kernel::Avx2 => 300,
            Kernel::Avx512Vl => 222,
            Kernel::Avx512 => 375,
        }
    }

    /// The kernel with the lowest cost per lane on this CPU (for a wide set of lanes).
    pub fn best() -> Kernel {
        Self::available()
            .into_iter()
            .min_by_key(|k| k.cost(k.lanes()) * 1024 / k.lanes() as u32)
            .unwrap_or(Kernel::Scalar)
    }
}

/// Which kernels a hasher may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// The cheapest combination of the available kernels for each lane count.
    Auto,
    /// This kernel for every group of lanes (tests and benchmarks).
    Only(Kernel),
}

/// A policy with its plan for every lane count up to the hasher's.
#[derive(Clone, Debug)]
struct Planner {
    policy: Policy,
    /// `Auto` only: see [`plan_table`].
    table: Vec<(u64, Kernel, usize)>,
}

impl Planner {
    fn new(policy: Policy, lanes: usize) -> Self {
        let table = match policy {
            Policy::Auto => plan_table(lanes),
            Policy::Only(_) => Vec::new(),
        };
        Planner { policy, table }
    }

    /// Kernel and lane count of the next call when `r` lanes remain.
    fn next(&self, r: usize) -> (Kernel, usize) {
        match self.policy {
            Policy::Only(k) => (k, r.min(k.lanes())),
            Policy::Auto => match self.table.get(r) {
                Some(&(_, k, used)) => (k, used),
                // more lanes than planned for (not reached through the public API)
                None => (Kernel::best(), r.min(Kernel::best().lanes())),
            },
        }
    }
}

/// Error from [`Sha256Lanes::with_kernel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SHA-256 kernel {0:?} is not supported by this CPU")]
pub struct KernelUnavailable(pub Kernel);

/// How to cover `r` lanes with kernel calls at the lowest total cost:
/// `plan[r]` = (cost, kernel of the first call, lanes it takes).
fn plan_table(max: usize) -> Vec<(u64, Kernel, usize)> {
    let kernels = Kernel::available();
    let mut t = vec![(0u64, Kernel::Scalar, 1); max + 1];
    for r in 1..=max {
        t[r] = kernels
            .iter()
            .flat_map(|&k| (1..=r.min(k.lanes())).map(move |used| (k, used)))
            .map(|(k, used)| (k.cost(used) as u64 + t[r - used].0, k, used))
            .min_by_key(|x| x.0)
            .expect("scalar is always available");
    }
    t
}

/// Compress `nblocks` blocks of every lane with one kernel, `states.len() <= k.lanes()`.
fn compress_with(kernel: Kernel, states: &mut [[u32; 8]], data: &[&[u8]], nblocks: usize) {
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Scalar && x86::compress_group(kernel, states, data, nblocks) {
        return;
    }
    for (st, d) in states.iter_mut().zip(data) {
        compress_scalar(st, &d[..nblocks * 64]);
    }
}

fn compress_scalar(state: &mut [u32; 8], blocks: &[u8]) {
    use sha2::digest::generic_array::GenericArray;
    for b in blocks.chunks_exact(64) {
        sha2::compress256(state, core::slice::from_ref(GenericArray::from_slice(b)));
    }
}

/// Compress whole blocks: lane `i` compresses all of `data[i]` (a multiple of 64 bytes)
/// into `states[i]`. Lanes of different lengths are taken in steps of the shortest
/// remaining one, so equal lengths make one step.
fn compress_lanes(plan: &Planner, states: &mut [[u32; 8]], data: &[&[u8]]) {
    debug_assert_eq!(states.len(), data.len());
    debug_assert!(data.iter().all(|d| d.len() % 64 == 0));
    let mut done = vec![0usize; data.len()];
    loop {
        let active: Vec<usize> = (0..data.len())
            .filter(|&i| done[i] < data[i].len())
            .collect();
        let Some(m) = active.iter().map(|&i| (data[i].len() - done[i]) / 64).min() else {
            return;
        };
        let mut idx = 0;
        while idx < active.len() {
            let r = active.len() - idx;
            let (kernel, take) = plan.next(r);
            let lanes = &active[idx..idx + take];
            let mut st: Vec<[u32; 8]> = lanes.iter().map(|&i| states[i]).collect();
            let d: Vec<&[u8]> = lanes
                .iter()
                .map(|&i| &data[i][done[i]..done[i] + m * 64])
                .collect();
            compress_with(kernel, &mut st, &d, m);
            for (&i, s) in lanes.iter().zip(st) {
                states[i] = s;
            }
            idx += take;
        }
        for &i in &active {
            done[i] += m * 64;
        }
    }
}

/// One lane's running state.
#[derive(Clone, Debug)]
struct Lane {
    h: [u32; 8],
    buf: [u8; 64],
    /// Bytes in `buf`, always `< 64` between calls.
    fill: usize,
    /// Message bytes so far.
    len: u64,
}

impl Lane {
    const NEW: Lane = Lane {
        h: IV,
        buf: [0; 64],
        fill: 0,
        len: 0,
    };

    /// The padded final block(s): the buffered tail, 0x80, zeros, the bit length.
    fn padding(&self) -> ([u8; 128], usize) {
        let mut p = [0u8; 128];
        p[..self.fill].copy_from_slice(&self.buf[..self.fill]);
        p[self.fill] = 0x80;
        let total = if self.fill < 56 { 64 } else { 128 };
        p[total - 8..total].copy_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        (p, total)
    }
}

fn digest_bytes(h: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Streaming SHA-256 of several messages at once.
#[derive(Clone, Debug)]
pub struct Sha256Lanes {
    lanes: Vec<Lane>,
    plan: Planner,
}

impl Sha256Lanes {
    /// `lanes` empty messages, hashed with the best kernels of this CPU.
    pub fn new(lanes: usize) -> Self {
        Sha256Lanes {
            lanes: vec![Lane::NEW; lanes],
            plan: Planner::new(Policy::Auto, lanes),
        }
    }

    /// Like [`Self::new`], with every group of lanes on `kernel` (tests, benchmarks).
    pub fn with_kernel(lanes: usize, kernel: Kernel) -> Result<Self, KernelUnavailable> {
        if !kernel.is_available() {
            return Err(KernelUnavailable(kernel));
        }
        Ok(Sha256Lanes {
            lanes: vec![Lane::NEW; lanes],
            plan: Planner::new(Policy::Only(kernel), lanes),
        })
    }

    pub fn num_lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Append `chunks[i]` to message `i`, for every lane (`chunks.len()` must equal
    /// [`Self::num_lanes`]; panics otherwise). Equal lengths are the fast path.
    pub fn update_lanes(&mut self, chunks: &[&[u8]]) {
        assert_eq!(
            chunks.len(),
            self.lanes.len(),
            "sha256mb: one chunk per lane"
        );
        // 1. top up partly filled buffers; full ones are compressed together
        let mut rest: Vec<&[u8]> = Vec::with_capacity(chunks.len());
        let mut full: Vec<usize> = Vec::new();
        for (i, (lane, &c)) in self.lanes.iter_mut().zip(chunks).enumerate() {
            lane.len = lane.len.wrapping_add(c.len() as u64);
            let mut c = c;
            if lane.fill > 0 {
                let take = c.len().min(64 - lane.fill);
                lane.buf[lane.fill..lane.fill + take].copy_from_slice(&c[..take]);
                lane.fill += take;
                c = &c[take..];
                if lane.fill == 64 {
                    full.push(i);
                }
            }
            rest.push(c);
        }
        if !full.is_empty() {
            let mut st: Vec<[u32; 8]> = full.iter().map(|&i| self.lanes[i].h).collect();
            let bufs: Vec<&[u8]> = full.iter().map(|&i| &self.lanes[i].buf[..]).collect();
            compress_lanes(&self.plan, &mut st, &bufs);
            for (&i, s) in full.iter().zip(st) {
                self.lanes[i].h = s;
                self.lanes[i].fill = 0;
            }
        }
        // 2. whole blocks straight from the chunks, all lanes together
        let whole: Vec<&[u8]> = rest.iter().map(|c| &c[..c.len() / 64 * 64]).collect();
        if whole.iter().any(|w| !w.is_empty()) {
            let mut st: Vec<[u32; 8]> = self.lanes.iter().map(|l| l.h).collect();
            compress_lanes(&self.plan, &mut st, &whole);
            for (lane, s) in self.lanes.iter_mut().zip(st) {
                lane.h = s;
            }
        }
        // 3. tails into the buffers
        for (lane, c) in self.lanes.iter_mut().zip(&rest) {
            let tail = &c[c.len() / 64 * 64..];
            if !tail.is_empty() {
                debug_assert_eq!(lane.fill, 0);
                lane.buf[..tail.len()].copy_from_slice(tail);
                lane.fill = tail.len();
            }
        }
    }

    /// Append `data` to message `lane` alone.
    pub fn update_lane(&mut self, lane: usize, data: &[u8]) {
        let mut one = Sha256Lanes {
            lanes: vec![self.lanes[lane].clone()],
            plan: self.plan.clone(),
        };
        one.update_lanes(&[data]);
        self.lanes[lane] = one.lanes.pop().expect("one lane");
    }

    /// The digest of every message.
    pub fn finish(self) -> Vec<[u8; 32]> {
        self.digests(&self.lanes)
    }

    /// The digests of `lanes` (some or all of this hasher's), which are not changed.
    fn digests(&self, lanes: &[Lane]) -> Vec<[u8; 32]> {
        let pads: Vec<([u8; 128], usize)> = lanes.iter().map(Lane::padding).collect();
        let tails: Vec<&[u8]> = pads.iter().map(|(p, n)| &p[..*n]).collect();
        let mut st: Vec<[u32; 8]> = lanes.iter().map(|l| l.h).collect();
        compress_lanes(&self.plan, &mut st, &tails);
        st.iter().map(digest_bytes).collect()
    }
}

/// Streaming tagged SHA-256d (`hashutil::TaggedHasher`) of several messages at once:
/// lane `i` is `SHA256(SHA256(netstring(tag_i) || message_i))`.
#[derive(Clone, Debug)]
pub struct TaggedLanes {
    inner: Sha256Lanes,
    /// Each lane right after its tag: what a lane restarts from.
    fresh: Vec<Lane>,
}

impl TaggedLanes {
    /// `lanes` messages under the same tag.
    pub fn new(tag: &[u8], lanes: usize) -> Self {
        Self::from_inner(Sha256Lanes::new(lanes), &vec![tag; lanes])
    }

    /// One message per tag (e.g. a segment hash and the flat crypttext hash side by side).
    pub fn with_tags(tags: &[&[u8]]) -> Self {
        Self::from_inner(Sha256Lanes::new(tags.len()), tags)
    }

    /// Like [`Self::new`] with every group of lanes on `kernel` (tests, benchmarks).
    pub fn with_kernel(
        tag: &[u8],
        lanes: usize,
        kernel: Kernel,
    ) -> Result<Self, KernelUnavailable> {
        Ok(Self::from_inner(
            Sha256Lanes::with_kernel(lanes, kernel)?,
            &vec![tag; lanes],
        ))
    }

    /// Like [`Self::with_tags`] with every group of lanes on `kernel` (tests, benchmarks).
    pub fn with_tags_and_kernel(tags: &[&[u8]], kernel: Kernel) -> Result<Self, KernelUnavailable> {
        Ok(Self::from_inner(
            Sha256Lanes::with_kernel(tags.len(), kernel)?,
            tags,
        ))
    }

    fn from_inner(mut inner: Sha256Lanes, tags: &[&[u8]]) -> Self {
        let prefixes: Vec<Vec<u8>> = tags.iter().map(|t| netstring::netstring(t)).collect();
        let refs: Vec<&[u8]> = prefixes.iter().map(|p| &p[..]).collect();
        inner.update_lanes(&refs);
        let fresh = inner.lanes.clone();
        TaggedLanes { inner, fresh }
    }

    pub fn num_lanes(&self) -> usize {
        self.inner.num_lanes()
    }

    /// Append `chunks[i]` to message `i` (one chunk per lane, panics otherwise; equal
    /// lengths are fastest).
    pub fn update_lanes(&mut self, chunks: &[&[u8]]) {
        self.inner.update_lanes(chunks);
    }

    /// Append `data` to message `lane` alone.
    pub fn update_lane(&mut self, lane: usize, data: &[u8]) {
        self.inner.update_lane(lane, data);
    }

    /// The tagged SHA-256d of every message.
    pub fn finish(self) -> Vec<Hash> {
        self.outer(&self.inner.lanes)
    }

    /// The tagged SHA-256d of every message, and every lane restarts empty (same tags):
    /// one call per segment for the block hashes of all shares.
    pub fn finish_reset(&mut self) -> Vec<Hash> {
        let out = self.outer(&self.inner.lanes);
        self.inner.lanes.clone_from(&self.fresh);
        out
    }

    /// The tagged SHA-256d of message `lane`, which restarts empty; the other lanes go on
    /// (e.g. the per-segment hash next to the whole-file hash).
    pub fn finish_lane_reset(&mut self, lane: usize) -> Hash {
        self.finish_reset_lanes(&[lane])[0]
    }

    /// The tagged SHA-256d of the messages in `lanes` so far (in that order), leaving
    /// every lane as it is. Panics if a lane is out of range.
    pub fn finish_lanes(&self, lanes: &[usize]) -> Vec<Hash> {
        let picked: Vec<Lane> = lanes.iter().map(|&i| self.inner.lanes[i].clone()).collect();
        self.outer(&picked)
    }

    /// The tagged SHA-256d of the messages in `lanes` (in that order), which restart
    /// empty; the other lanes go on. Panics if a lane is out of range.
    pub fn finish_reset_lanes(&mut self, lanes: &[usize]) -> Vec<Hash> {
        let out = self.finish_lanes(lanes);
        for &i in lanes {
            self.inner.lanes[i] = self.fresh[i].clone();
        }
        out
    }

    fn outer(&self, lanes: &[Lane]) -> Vec<Hash> {
        let inner = self.inner.digests(lanes);
        // outer SHA-256 of each 32-byte digest: one padded block per lane
        let blocks: Vec<[u8; 64]> = inner
            .iter()
            .map(|d| {
                let mut b = [0u8; 64];
                b[..HASH_LEN].copy_from_slice(d);
                b[HASH_LEN] = 0x80;
                b[56..].copy_from_slice(&((HASH_LEN as u64) * 8).to_be_bytes());
                b
            })
            .collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        let mut st = vec![IV; blocks.len()];
        compress_lanes(&self.inner.plan, &mut st, &refs);
        st.iter().map(digest_bytes).collect()
    }
}

/// SHA-256 of every input (any lengths).
pub fn sha256_many(inputs: &[&[u8]]) -> Vec<[u8; 32]> {
    let mut h = Sha256Lanes::new(inputs.len());
    h.update_lanes(inputs);
    h.finish()
}

/// `tagged_hash(tag, input)` of every input (any lengths).
pub fn tagged_hash_many(tag: &[u8], inputs: &[&[u8]]) -> Vec<Hash> {
    let mut h = TaggedLanes::new(tag, inputs.len());
    h.update_lanes(inputs);
    h.finish()
}

/// `hashutil::block_hash` of every block: e.g. the `k` blocks a downloader fetched for
/// one segment, checked against their block hash trees together.
pub fn block_hashes(blocks: &[&[u8]]) -> Vec<Hash> {
    tagged_hash_many(crate::hashutil::tags::BLOCK, blocks)
}
