//! x86-64 multi-buffer SHA-256 compression kernels.
//!
//! Every kernel compresses `nblocks` consecutive 64-byte blocks of several independent
//! messages ("lanes") at once, each lane from its own pointer into its own chaining state:
//!
//! - [`Kernel::ShaNi`]: the SHA extensions (`sha256rnds2`), [`SHANI_LANES`] lanes
//!   interleaved instruction by instruction. One SHA-NI stream is bound by the latency of
//!   `sha256rnds2` (each one needs the previous one's result); independent streams fill
//!   the pipeline between them.
//! - [`Kernel::Avx2`]: 8 lanes, one 32-bit element of a `ymm` register per lane.
//!   AVX2 has no rotate, so each rotation is two shifts and an OR.
//! - [`Kernel::Avx512Vl`]: 8 lanes in `ymm` registers, with AVX-512VL's `vprord` (rotate)
//!   and `vpternlogd` (any three-input boolean function in one instruction).
//! - [`Kernel::Avx512`]: 16 lanes in `zmm` registers, with `vprord` and `vpternlogd`.
//!
//! The vector kernels load each lane's block as a row and transpose 8×8 or 16×16 words
//! so that register `i` holds word `i` of every lane; the rounds then run on all lanes as
//! plain SIMD arithmetic, the constants broadcast from memory.
//!
//! # Safety
//! Every kernel is an `unsafe fn` with `#[target_feature]`: the caller must have checked
//! the features at run time ([`is_available`]) and must pass, for each lane, a pointer
//! to at least `nblocks * 64` readable bytes. The safe wrapper [`compress_group`] checks
//! both before calling; nothing else in the crate calls the kernels.

use core::arch::x86_64::*;

use super::{Kernel, K32};

/// Most lanes the SHA-NI kernel interleaves. Measured on Zen 4 (MB/s over all lanes,
/// 1 MiB per lane): x1 1814, x2 3620, x3 3693, x4 3233, x5 2696, x6 1929: two streams
/// fill the `sha256rnds2` pipeline, and from four on the 16 `xmm` registers the SHA
/// instructions can address spill.
pub(super) const SHANI_LANES: usize = 3;

pub(super) fn is_available(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Scalar => true,
        Kernel::ShaNi => {
            is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("sse2")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1")
        }
        Kernel::Avx2 => is_x86_feature_detected!("avx2"),
        Kernel::Avx512Vl => {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
        }
        Kernel::Avx512 => {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
        }
    }
}

/// Compress `nblocks` blocks of each lane: lane `j` starts at `data[j]` with state
/// `states[j]`. `states.len() == data.len()`, at most `kernel.lanes()`, and each
/// `data[j]` at least `nblocks * 64` bytes long (checked: the kernels read raw pointers).
/// Returns `false` (doing nothing) if the kernel cannot run on this CPU.
pub(super) fn compress_group(
    kernel: Kernel,
    states: &mut [[u32; 8]],
    data: &[&[u8]],
    nblocks: usize,
) -> bool {
    let lanes = states.len();
    assert!(
        lanes == data.len() && lanes >= 1 && lanes <= kernel.lanes(),
        "sha256mb: lane count"
    );
    assert!(
        data.iter().all(|d| d.len() / 64 >= nblocks),
        "sha256mb: lane shorter than nblocks"
    );
    if nblocks == 0 {
        return true;
    }
    if !is_available(kernel) {
        return false;
    }
    // Unused lanes repeat lane 0 (valid memory); their results are dropped.
    let mut st = [[0u32; 8]; 16];
    let mut ptrs = [data[0].as_ptr(); 16];
    for j in 0..lanes {
        st[j] = states[j];
        ptrs[j] = data[j].as_ptr();
    }
    // SAFETY: `is_available(kernel)` confirmed the CPU features of the kernel called, and
    // every pointer in `ptrs` (used lanes and the lane-0 copies) has `nblocks * 64`
    // readable bytes, checked above.
    unsafe {
        match kernel {
            Kernel::Avx512 => avx512(&mut st, &ptrs, nblocks),
            Kernel::Avx512Vl => avx512vl(&mut st, &ptrs, nblocks),
            Kernel::Avx2 => avx2(&mut st, &ptrs, nblocks),
            Kernel::ShaNi => match lanes {
                1 => shani::<1>(&mut st, &ptrs, nblocks),
                2 => shani::<2>(&mut st, &ptrs, nblocks),
                _ => shani::<3>(&mut st, &ptrs, nblocks),
            },
            Kernel::Scalar => return false,
        }
    }
    states.copy_from_slice(&st[..lanes]);
    true
}

// ---------------------------------------------------------------- vector kernels

/// SIMD word operations, one 32-bit element per lane. Implementations are zero-sized
/// markers whose `#[inline(always)]` functions are only ever inlined into a
/// `#[target_feature]` kernel that enables what they use.
trait Lanes {
    type V: Copy;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn splat(x: u32) -> Self::V;
    /// Σ1(e) = ror6 ^ ror11 ^ ror25
    unsafe fn bsig1(e: Self::V) -> Self::V;
    /// Σ0(a) = ror2 ^ ror13 ^ ror22
    unsafe fn bsig0(a: Self::V) -> Self::V;
    /// σ0(x) = ror7 ^ ror18 ^ shr3
    unsafe fn ssig0(x: Self::V) -> Self::V;
    /// σ1(x) = ror17 ^ ror19 ^ shr10
    unsafe fn ssig1(x: Self::V) -> Self::V;
    /// Ch(e, f, g) = (e & f) ^ (!e & g)
    unsafe fn ch(e: Self::V, f: Self::V, g: Self::V) -> Self::V;
    /// Maj(a, b, c) = (a & b) ^ (a & c) ^ (b & c)
    unsafe fn maj(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Word `i` of block `blk` of every lane, big-endian decoded: `out[i]` lane `j` =
    /// `be32(ptrs[j][blk*64 + 4i..])`.
    unsafe fn load_block(ptrs: &[*const u8; 16], blk: usize) -> [Self::V; 16];
    unsafe fn load_state(st: &[[u32; 8]; 16]) -> [Self::V; 8];
    unsafe fn store_state(v: &[Self::V; 8], st: &mut [[u32; 8]; 16]);
}

macro_rules! round {
    ($L:ty, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        let t1 = <$L>::add(
            <$L>::add($h, <$L>::bsig1($e)),
            <$L>::add(<$L>::ch($e, $f, $g), $kw),
        );
        $d = <$L>::add($d, t1);
        $h = <$L>::add(t1, <$L>::add(<$L>::bsig0($a), <$L>::maj($a, $b, $c)));
    };
}

/// 16 rounds on `w[0..16]` with constants `K32[base..base+16]`, rotating the names of the
/// working variables instead of moving values.
macro_rules! rounds16 {
    ($L:ty, $w:ident, $base:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {
        let k = &K32[$base..$base + 16];
        round!(
            $L,
            $a,
            $b,
            $c,
            $d,
            $e,
            $f,
            $g,
            $h,
            <$L>::add($w[0], <$L>::splat(k[0]))
        );
        round!(
            $L,
            $h,
            $a,
            $b,
            $c,
            $d,
            $e,
            $f,
            $g,
            <$L>::add($w[1], <$L>::splat(k[1]))
        );
        round!(
            $L,
            $g,
            $h,
            $a,
            $b,
            $c,
            $d,
            $e,
            $f,
            <$L>::add($w[2], <$L>::splat(k[2]))
        );
        round!(
            $L,
            $f,
            $g,
            $h,
            $a,
            $b,
            $c,
            $d,
            $e,
            <$L>::add($w[3], <$L>::splat(k[3]))
        );
        round!(
            $L,
            $e,
            $f,
            $g,
            $h,
            $a,
            $b,
            $c,
            $d,
            <$L>::add($w[4], <$L>::splat(k[4]))
        );
        round!(
            $L,
            $d,
            $e,
            $f,
            $g,
            $h,
            $a,
            $b,
            $c,
            <$L>::add($w[5], <$L>::splat(k[5]))
        );
        round!(
            $L,
            $c,
            $d,
            $e,
            $f,
            $g,
            $h,
            $a,
            $b,
            <$L>::add($w[6], <$L>::splat(k[6]))
        );
        round!(
            $L,
            $b,
            $c,
            $d,
            $e,
            $f,
            $g,
            $h,
            $a,
            <$L>::add($w[7], <$L>::splat(k[7]))
        );
        round!(
            $L,
            $a,
            $b,
            $c,
            $d,
            $e,
            $f,
            $g,
            $h,
            <$L>::add($w[8], <$L>::splat(k[8]))
        );
        round!(
            $L,
            $h,
            $a,
            $b,
            $c,
            $d,
            $e,
            $f,
            $g,
            <$L>::add($w[9], <$L>::splat(k[9]))
        );
        round!(
            $L,
            $g,
            $h,
            $a,
            $b,
            $c,
            $d,
            $e,
            $f,
            <$L>::add($w[10], <$L>::splat(k[10]))
        );
        round!(
            $L,
            $f,
            $g,
            $h,
            $a,
            $b,
            $c,
            $d,
            $e,
            <$L>::add($w[11], <$L>::splat(k[11]))
        );
        round!(
            $L,
            $e,
            $f,
            $g,
            $h,
            $a,
            $b,
            $c,
            $d,
            <$L>::add($w[12], <$L>::splat(k[12]))
        );
        round!(
            $L,
            $d,
            $e,
            $f,
            $g,
            $h,
            $a,
            $b,
            $c,
            <$L>::add($w[13], <$L>::splat(k[13]))
        );
        round!(
            $L,
            $c,
            $d,
            $e,
            $f,
            $g,
            $h,
            $a,
            $b,
            <$L>::add($w[14], <$L>::splat(k[14]))
        );
        round!(
            $L,
            $b,
            $c,
            $d,
            $e,
            $f,
            $g,
            $h,
            $a,
            <$L>::add($w[15], <$L>::splat(k[15]))
        );
    };
}

/// The next 16 schedule words, in place: `w[t] = σ1(w[t-2]) + w[t-7] + σ0(w[t-15]) + w[t-16]`.
#[inline(always)]
unsafe fn schedule<L: Lanes>(w: &mut [L::V; 16]) {
    for i in 0..16 {
        w[i] = L::add(
            L::add(L::ssig1(w[(i + 14) & 15]), w[(i + 9) & 15]),
            L::add(L::ssig0(w[(i + 1) & 15]), w[i]),
        );
    }
}

#[inline(always)]
unsafe fn compress_vec<L: Lanes>(st: &mut [[u32; 8]; 16], ptrs: &[*const u8; 16], nblocks: usize) {
    let mut s = L::load_state(st);
    for blk in 0..nblocks {
        let mut w = L::load_block(ptrs, blk);
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = s;
        rounds16!(L, w, 0, a, b, c, d, e, f, g, h);
        for base in [16, 32, 48] {
            schedule::<L>(&mut w);
            rounds16!(L, w, base, a, b, c, d, e, f, g, h);
        }
        for (x, y) in s.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *x = L::add(*x, y);
        }
    }
    L::store_state(&s, st);
}

/// Byte-swap mask for 32-bit words, repeated for every 128-bit lane.
const BSWAP: [u8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

/// Rows `r[0..8]` (one lane's 8 words each) to columns: `out[i]` lane `j` = `r[j][i]`.
#[inline(always)]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    // u[4g + m], 128-bit half k: word 4k+m of rows 4g..4g+4
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

#[inline(always)]
unsafe fn load_block8(ptrs: &[*const u8; 16], blk: usize) -> [__m256i; 16] {
    let mask = _mm256_broadcastsi128_si256(_mm_loadu_si128(BSWAP.as_ptr().cast()));
    let mut out = [_mm256_setzero_si256(); 16];
    for half in 0..2 {
        let mut r = [_mm256_setzero_si256(); 8];
        for j in 0..8 {
            let p = ptrs[j].add(blk * 64 + half * 32);
            r[j] = _mm256_shuffle_epi8(_mm256_loadu_si256(p.cast()), mask);
        }
        let c = transpose8(r);
        out[half * 8..half * 8 + 8].copy_from_slice(&c);
    }
    out
}

#[inline(always)]
unsafe fn load_state8(st: &[[u32; 8]; 16]) -> [__m256i; 8] {
    let mut out = [_mm256_setzero_si256(); 8];
    for (i, o) in out.iter_mut().enumerate() {
        let col: [u32; 8] = core::array::from_fn(|j| st[j][i]);
        *o = _mm256_loadu_si256(col.as_ptr().cast());
    }
    out
}

#[inline(always)]
unsafe fn store_state8(v: &[__m256i; 8], st: &mut [[u32; 8]; 16]) {
    for (i, x) in v.iter().enumerate() {
        let mut col = [0u32; 8];
        _mm256_storeu_si256(col.as_mut_ptr().cast(), *x);
        for j in 0..8 {
            st[j][i] = col[j];
        }
    }
}

/// `ror(x, n)` on AVX2: two shifts and an OR (`$l` = 32 - `$r`).
macro_rules! ror256 {
    ($x:expr, $r:literal, $l:literal) => {
        _mm256_or_si256(_mm256_srli_epi32::<$r>($x), _mm256_slli_epi32::<$l>($x))
    };
}

struct Avx2;
impl Lanes for Avx2 {
    type V = __m256i;
    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn splat(x: u32) -> __m256i {
        _mm256_set1_epi32(x as i32)
    }
    #[inline(always)]
    unsafe fn bsig1(e: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_xor_si256(ror256!(e, 6, 26), ror256!(e, 11, 21)),
            ror256!(e, 25, 7),
        )
    }
    #[inline(always)]
    unsafe fn bsig0(a: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_xor_si256(ror256!(a, 2, 30), ror256!(a, 13, 19)),
            ror256!(a, 22, 10),
        )
    }
    #[inline(always)]
    unsafe fn ssig0(x: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_xor_si256(ror256!(x, 7, 25), ror256!(x, 18, 14)),
            _mm256_srli_epi32::<3>(x),
        )
    }
    #[inline(always)]
    unsafe fn ssig1(x: __m256i) -> __m256i {
        _mm256_xor_si256(
            _mm256_xor_si256(ror256!(x, 17, 15), ror256!(x, 19, 13)),
            _mm256_srli_epi32::<10>(x),
        )
    }
    #[inline(always)]
    unsafe fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_and_si256(e, _mm256_xor_si256(f, g)), g)
    }
    #[inline(always)]
    unsafe fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_or_si256(
            _mm256_and_si256(a, b),
            _mm256_and_si256(c, _mm256_or_si256(a, b)),
        )
    }
    #[inline(always)]
    unsafe fn load_block(ptrs: &[*const u8; 16], blk: usize) -> [__m256i; 16] {
        load_block8(ptrs, blk)
    }
    #[inline(always)]
    unsafe fn load_state(st: &[[u32; 8]; 16]) -> [__m256i; 8] {
        load_state8(st)
    }
    #[inline(always)]
    unsafe fn store_state(v: &[__m256i; 8], st: &mut [[u32; 8]; 16]) {
        store_state8(v, st)
    }
}

/// Three-way XOR, choose (`a ? b : c`) and majority as `vpternlogd` truth tables.
const XOR3: i32 = 0x96;
const CHOOSE: i32 = 0xCA;
const MAJ: i32 = 0xE8;

struct Avx512Vl;
impl Lanes for Avx512Vl {
    type V = __m256i;
    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn splat(x: u32) -> __m256i {
        _mm256_set1_epi32(x as i32)
    }
    #[inline(always)]
    unsafe fn bsig1(e: __m256i) -> __m256i {
        _mm256_ternarylogic_epi32::<XOR3>(
            _mm256_ror_epi32::<6>(e),
            _mm256_ror_epi32::<11>(e),
            _mm256_ror_epi32::<25>(e),
        )
    }
    #[inline(always)]
    unsafe fn bsig0(a: __m256i) -> __m256i {
        _mm256_ternarylogic_epi32::<XOR3>(
            _mm256_ror_epi32::<2>(a),
            _mm256_ror_epi32::<13>(a),
            _mm256_ror_epi32::<22>(a),
        )
    }
    #[inline(always)]
    unsafe fn ssig0(x: __m256i) -> __m256i {
        _mm256_ternarylogic_epi32::<XOR3>(
            _mm256_ror_epi32::<7>(x),
            _mm256_ror_epi32::<18>(x),
            _mm256_srli_epi32::<3>(x),
        )
    }
    #[inline(always)]
    unsafe fn ssig1(x: __m256i) -> __m256i {
        _mm256_ternarylogic_epi32::<XOR3>(
            _mm256_ror_epi32::<17>(x),
            _mm256_ror_epi32::<19>(x),
            _mm256_srli_epi32::<10>(x),
        )
    }
    #[inline(always)]
    unsafe fn ch(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_ternarylogic_epi32::<CHOOSE>(e, f, g)
    }
    #[inline(always)]
    unsafe fn maj(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_ternarylogic_epi32::<MAJ>(a, b, c)
    }
    #[inline(always)]
    unsafe fn load_block(ptrs: &[*const u8; 16], blk: usize) -> [__m256i; 16] {
        load_block8(ptrs, blk)
    }
    #[inline(always)]
    unsafe fn load_state(st: &[[u32; 8]; 16]) -> [__m256i; 8] {
        load_state8(st)
    }
    #[inline(always)]
    unsafe fn store_state(v: &[__m256i; 8], st: &mut [[u32; 8]; 16]) {
        store_state8(v, st)
    }
}

struct Avx512;
impl Lanes for Avx512 {
    type V = __m512i;
    #[inline(always)]
    unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn splat(x: u32) -> __m512i {
        _mm512_set1_epi32(x as i32)
    }
    #[inline(always)]
    unsafe fn bsig1(e: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<XOR3>(
            _mm512_ror_epi32::<6>(e),
            _mm512_ror_epi32::<11>(e),
            _mm512_ror_epi32::<25>(e),
        )
    }
    #[inline(always)]
    unsafe fn bsig0(a: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<XOR3>(
            _mm512_ror_epi32::<2>(a),
            _mm512_ror_epi32::<13>(a),
            _mm512_ror_epi32::<22>(a),
        )
    }
    #[inline(always)]
    unsafe fn ssig0(x: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<XOR3>(
            _mm512_ror_epi32::<7>(x),
            _mm512_ror_epi32::<18>(x),
            _mm512_srli_epi32::<3>(x),
        )
    }
    #[inline(always)]
    unsafe fn ssig1(x: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<XOR3>(
            _mm512_ror_epi32::<17>(x),
            _mm512_ror_epi32::<19>(x),
            _mm512_srli_epi32::<10>(x),
        )
    }
    #[inline(always)]
    unsafe fn ch(e: __m512i, f: __m512i, g: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<CHOOSE>(e, f, g)
    }
    #[inline(always)]
    unsafe fn maj(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<MAJ>(a, b, c)
    }
    #[inline(always)]
    unsafe fn load_block(ptrs: &[*const u8; 16], blk: usize) -> [__m512i; 16] {
        let mask = _mm512_broadcast_i32x4(_mm_loadu_si128(BSWAP.as_ptr().cast()));
        let r: [__m512i; 16] = core::array::from_fn(|j| {
            _mm512_shuffle_epi8(_mm512_loadu_si512(ptrs[j].add(blk * 64).cast()), mask)
        });
        // t: 32-bit interleave of row pairs; u[4g + m], 128-bit lane k: word 4k+m of rows 4g..4g+4
        let t: [__m512i; 16] = core::array::from_fn(|i| {
            let (x, y) = (r[i & !1], r[i | 1]);
            if i & 1 == 0 {
                _mm512_unpacklo_epi32(x, y)
            } else {
                _mm512_unpackhi_epi32(x, y)
            }
        });
        let u: [__m512i; 16] = core::array::from_fn(|i| {
            let (g, m) = (i / 4, i % 4);
            let (x, y) = (t[4 * g + (m >> 1)], t[4 * g + 2 + (m >> 1)]);
            if m & 1 == 0 {
                _mm512_unpacklo_epi64(x, y)
            } else {
                _mm512_unpackhi_epi64(x, y)
            }
        });
        // 4×4 transpose of 128-bit lanes across u[m], u[4+m], u[8+m], u[12+m]
        let mut out = [_mm512_setzero_si512(); 16];
        for m in 0..4 {
            let v0 = _mm512_shuffle_i32x4::<0x44>(u[m], u[4 + m]);
            let v1 = _mm512_shuffle_i32x4::<0xEE>(u[m], u[4 + m]);
            let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + m], u[12 + m]);
            let v3 = _mm512_shuffle_i32x4::<0xEE>(u[8 + m], u[12 + m]);
            out[m] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
            out[4 + m] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
            out[8 + m] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
            out[12 + m] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
        }
        out
    }
    #[inline(always)]
    unsafe fn load_state(st: &[[u32; 8]; 16]) -> [__m512i; 8] {
        let mut out = [_mm512_setzero_si512(); 8];
        for (i, o) in out.iter_mut().enumerate() {
            let col: [u32; 16] = core::array::from_fn(|j| st[j][i]);
            *o = _mm512_loadu_si512(col.as_ptr().cast());
        }
        out
    }
    #[inline(always)]
    unsafe fn store_state(v: &[__m512i; 8], st: &mut [[u32; 8]; 16]) {
        for (i, x) in v.iter().enumerate() {
            let mut col = [0u32; 16];
            _mm512_storeu_si512(col.as_mut_ptr().cast(), *x);
            for j in 0..16 {
                st[j][i] = col[j];
            }
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2(st: &mut [[u32; 8]; 16], ptrs: &[*const u8; 16], nblocks: usize) {
    compress_vec::<Avx2>(st, ptrs, nblocks)
}

#[target_feature(enable = "avx2,avx512f,avx512vl")]
unsafe fn avx512vl(st: &mut [[u32; 8]; 16], ptrs: &[*const u8; 16], nblocks: usize) {
    compress_vec::<Avx512Vl>(st, ptrs, nblocks)
}

#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn avx512(st: &mut [[u32; 8]; 16], ptrs: &[*const u8; 16], nblocks: usize) {
    compress_vec::<Avx512>(st, ptrs, nblocks)
}

// ---------------------------------------------------------------- SHA-NI

/// The SHA-NI compression (as in Intel's reference and the `sha2` crate) on `L`
/// streams, each step done for every lane before the next step so the
/// `sha256rnds2` chains of the lanes overlap.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn shani<const L: usize>(st: &mut [[u32; 8]; 16], ptrs: &[*const u8; 16], nblocks: usize) {
    let mask = _mm_loadu_si128(BSWAP.as_ptr().cast());
    let mut abef = [_mm_setzero_si128(); L];
    let mut cdgh = [_mm_setzero_si128(); L];
    for j in 0..L {
        let p = st[j].as_ptr() as *const __m128i;
        let dcba = _mm_loadu_si128(p);
        let hgfe = _mm_loadu_si128(p.add(1));
        let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
        let efgh = _mm_shuffle_epi32::<0x1B>(hgfe);
        abef[j] = _mm_alignr_epi8::<8>(cdab, efgh);
        cdgh[j] = _mm_blend_epi16::<0xF0>(efgh, cdab);
    }
    for blk in 0..nblocks {
        let (abef0, cdgh0) = (abef, cdgh);
        let mut w = [[_mm_setzero_si128(); 4]; L];
        for j in 0..L {
            let p = ptrs[j].add(blk * 64) as *const __m128i;
            for (i, word) in w[j].iter_mut().enumerate() {
                *word = _mm_shuffle_epi8(_mm_loadu_si128(p.add(i)), mask);
            }
        }
        // four rounds with schedule words w[q % 4] (computed first from the previous
        // four when q >= 4); unrolled so every index is a constant
        macro_rules! quad {
            ($q:literal) => {
                if $q >= 4 {
                    for wj in w.iter_mut() {
                        let t1 = _mm_sha256msg1_epu32(wj[$q % 4], wj[($q + 1) % 4]);
                        let t2 = _mm_alignr_epi8::<4>(wj[($q + 3) % 4], wj[($q + 2) % 4]);
                        wj[$q % 4] = _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), wj[($q + 3) % 4]);
                    }
                }
                let k = _mm_loadu_si128(K32[4 * $q..].as_ptr().cast());
                let mut kw = [_mm_setzero_si128(); L];
                for j in 0..L {
                    kw[j] = _mm_add_epi32(w[j][$q % 4], k);
                    cdgh[j] = _mm_sha256rnds2_epu32(cdgh[j], abef[j], kw[j]);
                }
                for j in 0..L {
                    abef[j] =
                        _mm_sha256rnds2_epu32(abef[j], cdgh[j], _mm_shuffle_epi32::<0x0E>(kw[j]));
                }
            };
        }
        quad!(0);
        quad!(1);
        quad!(2);
        quad!(3);
        quad!(4);
        quad!(5);
        quad!(6);
        quad!(7);
        quad!(8);
        quad!(9);
        quad!(10);
        quad!(11);
        quad!(12);
        quad!(13);
        quad!(14);
        quad!(15);
        for j in 0..L {
            abef[j] = _mm_add_epi32(abef[j], abef0[j]);
            cdgh[j] = _mm_add_epi32(cdgh[j], cdgh0[j]);
        }
    }
    for j in 0..L {
        let feba = _mm_shuffle_epi32::<0x1B>(abef[j]);
        let dchg = _mm_shuffle_epi32::<0xB1>(cdgh[j]);
        let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
        let hgef = _mm_alignr_epi8::<8>(dchg, feba);
        let p = st[j].as_mut_ptr() as *mut __m128i;
        _mm_storeu_si128(p, dcba);
        _mm_storeu_si128(p.add(1), hgef);
    }
}
