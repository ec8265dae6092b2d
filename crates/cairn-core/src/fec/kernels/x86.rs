//! x86-64 SIMD kernels.
//!
//! Each kernel is a `#[target_feature]` function generic over `G`, the number
//! of outputs it accumulates in registers while it walks over the inputs:
//! for every vector position it loads one vector of each input once and
//! multiplies it by the `G` coefficients of that input's column.  The driver
//! ([`drive`]) splits outputs into groups of at most `G`, the byte range into
//! L1-sized chunks, and handles lengths that are not a multiple of the vector
//! width by recomputing an overlapping last vector (the outputs are a pure
//! function of the inputs at the same offset, so this is exact) or, for
//! slices shorter than one vector, by going through zero-padded copies.
//!
//! Measured figures, MB/s of segment data, median of criterion samples, 1 MiB
//! segments, AMD EPYC (Zen 4) VM with 2 vCPUs shared with other jobs (so
//! +-20% noise), `bench/fec/run.sh --kernels`:
//!
//! | kernel      | 3-of-10 enc | 3-of-10 dec | 71-of-255 enc | 71-of-255 dec |
//! |-------------|------------:|------------:|--------------:|--------------:|
//! | scalar      |         328 |         713 |            14 |            21 |
//! | ssse3       |        3041 |        6389 |           149 |           320 |
//! | avx2        |        8995 |       18452 |           225 |           772 |
//! | gfni-avx2   |       10674 |       22024 |           419 |           984 |
//! | gfni-avx512 |       19420 |       31150 |          1089 |          2263 |
//! | (zfec 1.6)  |         170 |         530 |            12 |            31 |
//!
//! Every SIMD kernel is kept because each is the best one on some CPUs:
//! GFNI needs Ice Lake / Zen 4 or later, AVX-512 is missing on many Intel
//! client parts that have GFNI, AVX2 covers Haswell..Zen 3, SSSE3 the rest.

use core::arch::x86_64::*;

use super::Kernel;
use crate::fec::gf::{AFFINE, NIBBLE};

pub(super) fn is_available(kernel: Kernel) -> bool {
    match kernel {
        Kernel::Scalar => true,
        Kernel::Ssse3 => is_x86_feature_detected!("ssse3"),
        Kernel::Avx2 => is_x86_feature_detected!("avx2"),
        Kernel::GfniAvx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("gfni"),
        Kernel::GfniAvx512 => {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("gfni")
        }
    }
}

/// Input bytes per chunk, summed over all inputs: the chunk of every input is
/// meant to stay in L1 (32 KiB) while each group of outputs passes over it.
/// (Tried 4, 8, 16, 32, 64 KiB and unchunked on 71-of-255: within noise of
/// each other, 32-64 KiB slightly ahead, unchunked 10-20% behind.)
const CHUNK_BUDGET: usize = 32 * 1024;

/// `dsts[j] = XOR_c coefs[j*k + c] · srcs[c]`; the caller checked the shapes
/// and that all lengths are equal and non-zero.  Falls back to the scalar
/// kernel if `kernel` cannot run on this CPU.
pub(super) fn dot(kernel: Kernel, coefs: &[u8], srcs: &[&[u8]], dsts: &mut [&mut [u8]]) {
    if !is_available(kernel) {
        return super::scalar_dot(coefs, srcs, dsts, 0, srcs[0].len());
    }
    let affine: fn(u8) -> u64 = |c| AFFINE[c as usize];
    let nibble: fn(u8) -> [u8; 32] = |c| NIBBLE[c as usize];
    // SAFETY: `is_available(kernel)` just confirmed the CPU features of the
    // group kernel passed to `drive`.
    unsafe {
        match kernel {
            Kernel::GfniAvx512 => drive(64, GFNI512_G, affine, gfni512, coefs, srcs, dsts),
            Kernel::GfniAvx2 => drive(32, GFNI256_G, affine, gfni256, coefs, srcs, dsts),
            Kernel::Avx2 => drive(32, AVX2_G, nibble, avx2, coefs, srcs, dsts),
            Kernel::Ssse3 => drive(16, SSSE3_G, nibble, ssse3, coefs, srcs, dsts),
            Kernel::Scalar => super::scalar_dot(coefs, srcs, dsts, 0, srcs[0].len()),
        }
    }
}

/// A group kernel: `dsts[j][start..end] = XOR_c coef(c, j) · srcs[c][start..end]`
/// for `j < dsts.len() <= G`, with prepared coefficients laid out `[c][j]`.
///
/// # Safety
/// The CPU features of the kernel must be available.  (Shapes are checked by
/// the kernel itself.)
type GroupFn<C> = unsafe fn(&[C], &[&[u8]], &mut [&mut [u8]], usize, usize);

/// Runs `group` (vector width `width` bytes, at most `gmax` outputs) over
/// whole slices: output groups, L1-sized chunks, the unaligned tail.
///
/// # Safety
/// The CPU features of `group` must be available.
unsafe fn drive<C: Copy>(
    width: usize,
    gmax: usize,
    prepare: fn(u8) -> C,
    group: GroupFn<C>,
    coefs: &[u8],
    srcs: &[&[u8]],
    dsts: &mut [&mut [u8]],
) {
    let k = srcs.len();
    let m = dsts.len();
    let len = srcs[0].len();
    if len < width {
        // Too short for one vector: run on zero-padded copies.
        let mut sbuf = vec![0u8; k * width];
        for (chunk, s) in sbuf.chunks_exact_mut(width).zip(srcs) {
            chunk[..len].copy_from_slice(s);
        }
        let mut dbuf = vec![0u8; m * width];
        let srefs: Vec<&[u8]> = sbuf.chunks_exact(width).collect();
        let mut drefs: Vec<&mut [u8]> = dbuf.chunks_exact_mut(width).collect();
        // SAFETY: forwarded from the caller (CPU features of `group`).
        unsafe { drive(width, gmax, prepare, group, coefs, &srefs, &mut drefs) };
        for (d, chunk) in dsts.iter_mut().zip(dbuf.chunks_exact(width)) {
            d.copy_from_slice(&chunk[..len]);
        }
        return;
    }

    // Balanced groups of at most gmax outputs; coefficients prepared [g][c][j].
    let ngroups = m.div_ceil(gmax);
    let bounds: Vec<usize> = (0..=ngroups).map(|g| g * m / ngroups).collect();
    let mut prepared: Vec<C> = Vec::with_capacity(m * k);
    for g in 0..ngroups {
        for c in 0..k {
            for j in bounds[g]..bounds[g + 1] {
                prepared.push(prepare(coefs[j * k + c]));
            }
        }
    }

    let chunk = ((CHUNK_BUDGET / k) / width * width).max(width);
    let simd_end = len / width * width;
    let mut run = |start: usize, end: usize| {
        for g in 0..ngroups {
            let (j0, j1) = (bounds[g], bounds[g + 1]);
            let p = &prepared[j0 * k..j1 * k];
            // SAFETY: forwarded from the caller (CPU features of `group`);
            // the group kernel checks the shapes itself.
            unsafe { group(p, srcs, &mut dsts[j0..j1], start, end) };
        }
    };
    let mut off = 0;
    while off < simd_end {
        let end = simd_end.min(off + chunk);
        run(off, end);
        off = end;
    }
    if simd_end < len {
        run(len - width, len);
    }
}

/// Checks a group kernel's arguments: the only conditions its unsafe code
/// relies on besides the CPU features.
#[inline(always)]
fn check_shapes<C>(
    g: usize,
    width: usize,
    coefs: &[C],
    srcs: &[&[u8]],
    dsts: &[&mut [u8]],
    start: usize,
    end: usize,
) {
    assert!(
        dsts.len() == g
            && coefs.len() == srcs.len() * g
            && start <= end
            && (end - start).is_multiple_of(width)
            && srcs.iter().all(|s| s.len() >= end)
            && dsts.iter().all(|d| d.len() >= end),
        "fec kernel: bad shapes"
    );
}

macro_rules! group_dispatch {
    ($(#[$doc:meta])* $name:ident, $generic:ident, $coef:ty, $gmax_name:ident = $gmax:literal, [$($g:literal)*]) => {
        const $gmax_name: usize = $gmax;
        $(#[$doc])*
        /// # Safety
        /// The kernel's CPU features must be available.
        unsafe fn $name(coefs: &[$coef], srcs: &[&[u8]], dsts: &mut [&mut [u8]], start: usize, end: usize) {
            // SAFETY: forwarded from the caller (CPU features available).
            unsafe {
                match dsts.len() {
                    $($g => $generic::<$g>(coefs, srcs, dsts, start, end),)*
                    _ => unreachable!("fec kernel: group larger than {}", $gmax),
                }
            }
        }
    };
}

group_dispatch!(
    /// GFNI on 512-bit vectors.
    gfni512, gfni512_group, u64, GFNI512_G = 16, [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16]
);
group_dispatch!(
    /// GFNI on 256-bit vectors.
    gfni256, gfni256_group, u64, GFNI256_G = 10, [1 2 3 4 5 6 7 8 9 10]
);
group_dispatch!(
    /// Split-nibble `vpshufb` on 256-bit vectors.
    avx2, avx2_group, [u8; 32], AVX2_G = 8, [1 2 3 4 5 6 7 8]
);
group_dispatch!(
    /// Split-nibble `pshufb` on 128-bit vectors.
    ssse3, ssse3_group, [u8; 32], SSSE3_G = 6, [1 2 3 4 5 6]
);

/// GFNI, 64 bytes per instruction: `vgf2p8affineqb` with the 8×8 bit matrix of
/// "multiply by c" in the 0x11d field, broadcast to every 64-bit lane (the
/// compiler folds the broadcast into the instruction as an `{1to8}` memory
/// operand).  The fastest kernel here: 71-of-255 encode ~1090 MB/s, 3.5x
/// `avx2`, 90x zfec.  Pairing inputs so that one `vpternlogq` adds two
/// products took 71-of-255 encode from ~575 to ~760 MB/s in the same run;
/// `G` = 8, 12, 16 were within noise of each other (16 kept: fewer passes
/// over the inputs).
#[target_feature(enable = "avx512f,avx512bw,gfni")]
unsafe fn gfni512_group<const G: usize>(
    mats: &[u64],
    srcs: &[&[u8]],
    dsts: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    check_shapes(G, 64, mats, srcs, dsts, start, end);
    let k = srcs.len();
    let mut i = start;
    while i < end {
        let mut acc = [_mm512_setzero_si512(); G];
        let mut c = 0;
        // Two inputs per step: vpternlogq folds both products into the
        // accumulator with one instruction.
        while c + 2 <= k {
            // SAFETY: check_shapes: srcs[c+1].len() >= end >= i + 64.
            let (s0, s1) = unsafe {
                (
                    _mm512_loadu_si512(srcs.get_unchecked(c).as_ptr().add(i).cast()),
                    _mm512_loadu_si512(srcs.get_unchecked(c + 1).as_ptr().add(i).cast()),
                )
            };
            // SAFETY: check_shapes: mats.len() == k * G, so (c+2)*G <= mats.len().
            let col = unsafe { mats.get_unchecked(c * G..c * G + 2 * G) };
            for j in 0..G {
                let p0 = _mm512_gf2p8affine_epi64_epi8::<0>(s0, _mm512_set1_epi64(col[j] as i64));
                let p1 =
                    _mm512_gf2p8affine_epi64_epi8::<0>(s1, _mm512_set1_epi64(col[G + j] as i64));
                acc[j] = _mm512_ternarylogic_epi64::<0x96>(acc[j], p0, p1);
            }
            c += 2;
        }
        if c < k {
            // SAFETY: check_shapes: srcs[c].len() >= end >= i + 64.
            let s = unsafe { _mm512_loadu_si512(srcs.get_unchecked(c).as_ptr().add(i).cast()) };
            // SAFETY: check_shapes: mats.len() == k * G.
            let col = unsafe { mats.get_unchecked(c * G..c * G + G) };
            for j in 0..G {
                let a = _mm512_set1_epi64(col[j] as i64);
                acc[j] = _mm512_xor_si512(acc[j], _mm512_gf2p8affine_epi64_epi8::<0>(s, a));
            }
        }
        for (j, v) in acc.iter().enumerate() {
            // SAFETY: check_shapes: dsts.len() == G and dsts[j].len() >= end >= i + 64.
            unsafe {
                _mm512_storeu_si512(dsts.get_unchecked_mut(j).as_mut_ptr().add(i).cast(), *v)
            };
        }
        i += 64;
    }
}

/// GFNI, 32 bytes per instruction (VEX-encoded `vgf2p8affineqb`), for CPUs
/// with GFNI but no AVX-512.  71-of-255 encode ~420 MB/s, 1.9x `avx2`.
#[target_feature(enable = "avx2,gfni")]
unsafe fn gfni256_group<const G: usize>(
    mats: &[u64],
    srcs: &[&[u8]],
    dsts: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    check_shapes(G, 32, mats, srcs, dsts, start, end);
    let k = srcs.len();
    let mut i = start;
    while i < end {
        let mut acc = [_mm256_setzero_si256(); G];
        for c in 0..k {
            // SAFETY: check_shapes: srcs[c].len() >= end >= i + 32.
            let s = unsafe { _mm256_loadu_si256(srcs.get_unchecked(c).as_ptr().add(i).cast()) };
            // SAFETY: check_shapes: mats.len() == k * G.
            let col = unsafe { mats.get_unchecked(c * G..c * G + G) };
            for j in 0..G {
                let a = _mm256_set1_epi64x(col[j] as i64);
                acc[j] = _mm256_xor_si256(acc[j], _mm256_gf2p8affine_epi64_epi8::<0>(s, a));
            }
        }
        for (j, v) in acc.iter().enumerate() {
            // SAFETY: check_shapes: dsts.len() == G and dsts[j].len() >= end >= i + 32.
            unsafe {
                _mm256_storeu_si256(dsts.get_unchecked_mut(j).as_mut_ptr().add(i).cast(), *v)
            };
        }
        i += 32;
    }
}

/// Split-nibble multiplication: `c·x = T_lo[x & 15] ^ T_hi[x >> 4]` with two
/// 16-entry tables looked up by `vpshufb` (in both 128-bit lanes).
/// 71-of-255 encode ~225 MB/s, 1.5x `ssse3`, 16x scalar.
#[target_feature(enable = "avx2")]
unsafe fn avx2_group<const G: usize>(
    tabs: &[[u8; 32]],
    srcs: &[&[u8]],
    dsts: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    check_shapes(G, 32, tabs, srcs, dsts, start, end);
    let k = srcs.len();
    let mask = _mm256_set1_epi8(0x0f);
    let mut i = start;
    while i < end {
        let mut acc = [_mm256_setzero_si256(); G];
        for c in 0..k {
            // SAFETY: check_shapes: srcs[c].len() >= end >= i + 32.
            let s = unsafe { _mm256_loadu_si256(srcs.get_unchecked(c).as_ptr().add(i).cast()) };
            let lo = _mm256_and_si256(s, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(s), mask);
            // SAFETY: check_shapes: tabs.len() == k * G.
            let col = unsafe { tabs.get_unchecked(c * G..c * G + G) };
            for j in 0..G {
                // SAFETY: each table is 32 bytes; two unaligned 16-byte loads.
                let (tl, th) = unsafe {
                    let p = col[j].as_ptr();
                    (
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast())),
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(16).cast())),
                    )
                };
                let prod =
                    _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo), _mm256_shuffle_epi8(th, hi));
                acc[j] = _mm256_xor_si256(acc[j], prod);
            }
        }
        for (j, v) in acc.iter().enumerate() {
            // SAFETY: check_shapes: dsts.len() == G and dsts[j].len() >= end >= i + 32.
            unsafe {
                _mm256_storeu_si256(dsts.get_unchecked_mut(j).as_mut_ptr().add(i).cast(), *v)
            };
        }
        i += 32;
    }
}

/// Split-nibble multiplication with `pshufb`, 16 bytes at a time.
/// 71-of-255 encode ~150 MB/s, 10x scalar.
#[target_feature(enable = "ssse3")]
unsafe fn ssse3_group<const G: usize>(
    tabs: &[[u8; 32]],
    srcs: &[&[u8]],
    dsts: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    check_shapes(G, 16, tabs, srcs, dsts, start, end);
    let k = srcs.len();
    let mask = _mm_set1_epi8(0x0f);
    let mut i = start;
    while i < end {
        let mut acc = [_mm_setzero_si128(); G];
        for c in 0..k {
            // SAFETY: check_shapes: srcs[c].len() >= end >= i + 16.
            let s = unsafe { _mm_loadu_si128(srcs.get_unchecked(c).as_ptr().add(i).cast()) };
            let lo = _mm_and_si128(s, mask);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(s), mask);
            // SAFETY: check_shapes: tabs.len() == k * G.
            let col = unsafe { tabs.get_unchecked(c * G..c * G + G) };
            for j in 0..G {
                // SAFETY: each table is 32 bytes; two unaligned 16-byte loads.
                let (tl, th) = unsafe {
                    let p = col[j].as_ptr();
                    (_mm_loadu_si128(p.cast()), _mm_loadu_si128(p.add(16).cast()))
                };
                let prod = _mm_xor_si128(_mm_shuffle_epi8(tl, lo), _mm_shuffle_epi8(th, hi));
                acc[j] = _mm_xor_si128(acc[j], prod);
            }
        }
        for (j, v) in acc.iter().enumerate() {
            // SAFETY: check_shapes: dsts.len() == G and dsts[j].len() >= end >= i + 16.
            unsafe { _mm_storeu_si128(dsts.get_unchecked_mut(j).as_mut_ptr().add(i).cast(), *v) };
        }
        i += 16;
    }
}
