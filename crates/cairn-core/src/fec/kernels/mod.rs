//! The hot loop of the erasure code: `dst_j = XOR_c coef[j][c] · src_c` over
//! byte slices, for several outputs `j` at once.
//!
//! Every kernel computes the same function; they differ only in speed.  The
//! SIMD kernels keep one accumulator register per output and read each input
//! vector once per group of outputs, so outputs are written exactly once and
//! never read back (no read-modify-write of the check blocks in memory).
//! Inputs are processed in chunks small enough that the chunk of all `k`
//! inputs stays in L1 while every group of outputs passes over it.

use super::gf::MUL_TABLE;

#[cfg(target_arch = "x86_64")]
mod x86;

/// An implementation of the GF(2^8) multiply-accumulate loop.
///
/// [`Kernel::best`] picks the fastest one the running CPU supports; the others
/// exist for testing and benchmarking (see [`crate::fec::Fec::with_kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Portable: a 256×256 multiplication table.
    Scalar,
    /// x86-64 SSSE3: split-nibble tables with `pshufb`, 16 bytes at a time.
    Ssse3,
    /// x86-64 AVX2: split-nibble tables with `vpshufb`, 32 bytes at a time.
    Avx2,
    /// x86-64 GFNI + AVX2: `vgf2p8affineqb` on 32 bytes at a time.
    GfniAvx2,
    /// x86-64 GFNI + AVX-512BW: `vgf2p8affineqb` on 64 bytes at a time.
    GfniAvx512,
}

impl Kernel {
    /// Every kernel, slowest first.
    pub const ALL: [Kernel; 5] = [
        Kernel::Scalar,
        Kernel::Ssse3,
        Kernel::Avx2,
        Kernel::GfniAvx2,
        Kernel::GfniAvx512,
    ];

    /// A short name, e.g. for benchmark labels.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Ssse3 => "ssse3",
            Kernel::Avx2 => "avx2",
            Kernel::GfniAvx2 => "gfni-avx2",
            Kernel::GfniAvx512 => "gfni-avx512",
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

    /// The kernels this CPU can run, slowest first.
    pub fn available() -> Vec<Kernel> {
        Self::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// The fastest kernel this CPU can run.
    ///
    /// Measured on the development machine (AMD EPYC Zen 4, 1 MiB segments,
    /// `bench/fec/run.sh --kernels`), GFNI on 512-bit vectors is the fastest,
    /// then GFNI on 256-bit vectors, AVX2, SSSE3, scalar, on every shape; the
    /// figures are in `x86.rs`.
    pub fn best() -> Kernel {
        Self::ALL
            .into_iter()
            .rev()
            .find(|k| k.is_available())
            .unwrap_or(Kernel::Scalar)
    }
}

/// `dsts[j] = XOR_c coefs[j*k + c] · srcs[c]` where `k = srcs.len()`.
///
/// Internal invariants (guaranteed by the public API, checked here because the
/// SIMD kernels rely on them): `coefs.len() == dsts.len() * k` and all slices
/// have the same length.  A kernel that is not available on this CPU falls
/// back to the scalar one.
pub(crate) fn dot(kernel: Kernel, coefs: &[u8], srcs: &[&[u8]], dsts: &mut [&mut [u8]]) {
    let k = srcs.len();
    assert_eq!(coefs.len(), dsts.len() * k, "fec: coefficient matrix shape");
    let len = match (srcs.first(), dsts.first()) {
        (Some(s), Some(_)) => s.len(),
        _ => {
            // No inputs: every output is the empty sum.
            for d in dsts.iter_mut() {
                d.fill(0);
            }
            return;
        }
    };
    assert!(
        srcs.iter().all(|s| s.len() == len) && dsts.iter().all(|d| d.len() == len),
        "fec: unequal slice lengths"
    );
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Scalar {
        x86::dot(kernel, coefs, srcs, dsts);
        return;
    }
    let _ = kernel;
    scalar_dot(coefs, srcs, dsts, 0, len);
}

/// Bytes of each input processed per pass of the scalar kernel.
const SCALAR_CHUNK: usize = 4096;

/// The portable kernel on the byte range `start..end` of every slice:
/// table lookups, one output at a time over an L1-sized chunk.
pub(crate) fn scalar_dot(
    coefs: &[u8],
    srcs: &[&[u8]],
    dsts: &mut [&mut [u8]],
    start: usize,
    end: usize,
) {
    let k = srcs.len();
    let mut off = start;
    while off < end {
        let stop = end.min(off + SCALAR_CHUNK);
        for (j, dst) in dsts.iter_mut().enumerate() {
            let dst = &mut dst[off..stop];
            let row = &coefs[j * k..(j + 1) * k];
            for (c, (&coef, src)) in row.iter().zip(srcs).enumerate() {
                let table = &MUL_TABLE[coef as usize];
                let src = &src[off..stop];
                if c == 0 {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = table[s as usize];
                    }
                } else if coef != 0 {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d ^= table[s as usize];
                    }
                }
            }
        }
        off = stop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::gf::mul;
    use proptest::prelude::*;

    fn reference(coefs: &[u8], srcs: &[Vec<u8>], m: usize) -> Vec<Vec<u8>> {
        let k = srcs.len();
        let len = srcs.first().map_or(0, |s| s.len());
        (0..m)
            .map(|j| {
                (0..len)
                    .map(|i| (0..k).fold(0u8, |a, c| a ^ mul(coefs[j * k + c], srcs[c][i])))
                    .collect()
            })
            .collect()
    }

    /// Runs `kernel` on slices that start `align` bytes into their buffers.
    fn run(kernel: Kernel, coefs: &[u8], srcs: &[Vec<u8>], m: usize, align: usize) -> Vec<Vec<u8>> {
        let len = srcs.first().map_or(0, |s| s.len());
        let shifted: Vec<Vec<u8>> = srcs
            .iter()
            .map(|s| {
                let mut v = vec![0xa5u8; align];
                v.extend_from_slice(s);
                v
            })
            .collect();
        let src_refs: Vec<&[u8]> = shifted.iter().map(|s| &s[align..]).collect();
        let mut outs: Vec<Vec<u8>> = (0..m).map(|_| vec![0x5au8; len + align]).collect();
        let mut dst_refs: Vec<&mut [u8]> = outs.iter_mut().map(|o| &mut o[align..]).collect();
        dot(kernel, coefs, &src_refs, &mut dst_refs);
        outs.into_iter().map(|o| o[align..].to_vec()).collect()
    }

    #[test]
    fn all_kernels_agree_on_edge_shapes() {
        let kernels = Kernel::available();
        // Lengths around the vector widths and the chunk sizes.
        let lens = [
            1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4097, 9000,
        ];
        for &(k, m) in &[(1, 1), (1, 7), (3, 7), (5, 17), (13, 2), (71, 9)] {
            for &len in &lens {
                let srcs: Vec<Vec<u8>> = (0..k)
                    .map(|c| {
                        (0..len)
                            .map(|i| (i * 31 + c * 17 + (i >> 3)) as u8)
                            .collect()
                    })
                    .collect();
                let coefs: Vec<u8> = (0..k * m).map(|i| (i * 97 + 3) as u8).collect();
                let want = reference(&coefs, &srcs, m);
                for &kern in &kernels {
                    assert_eq!(
                        run(kern, &coefs, &srcs, m, 0),
                        want,
                        "{kern:?} k={k} m={m} len={len}"
                    );
                }
            }
        }
    }

    #[test]
    fn special_coefficients() {
        // 0 and 1 coefficients, and every coefficient once.
        let srcs: Vec<Vec<u8>> = (0..256)
            .map(|c| (0..70).map(|i| (i * 7 + c) as u8).collect())
            .collect();
        let mut coefs: Vec<u8> = (0..=255u8).collect();
        coefs.extend(std::iter::repeat_n(0u8, 256));
        coefs.extend(std::iter::repeat_n(1u8, 256));
        let want = reference(&coefs, &srcs, 3);
        for kern in Kernel::available() {
            assert_eq!(run(kern, &coefs, &srcs, 3, 1), want, "{kern:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn simd_kernels_match_scalar(
            k in 1usize..40,
            m in 1usize..30,
            len in 0usize..700,
            align in 0usize..64,
            seed in any::<u64>(),
        ) {
            let mut x = seed | 1;
            let mut next = move || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 24) as u8 };
            let srcs: Vec<Vec<u8>> = (0..k).map(|_| (0..len).map(|_| next()).collect()).collect();
            let coefs: Vec<u8> = (0..k * m).map(|_| next()).collect();
            let want = run(Kernel::Scalar, &coefs, &srcs, m, 0);
            prop_assert_eq!(&want, &reference(&coefs, &srcs, m));
            for kern in Kernel::available() {
                prop_assert_eq!(&run(kern, &coefs, &srcs, m, align), &want, "{:?}", kern);
            }
        }
    }
}
