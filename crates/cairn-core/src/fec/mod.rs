//! zfec-compatible Reed-Solomon erasure coding.
//!
//! Byte-exact with the zfec package (1.6, as used by Tahoe-LAFS 1.20): a `k`-of-`n`
//! systematic code over GF(2^8) (polynomial 0x11d, generator 2).  Blocks
//! `0..k` are the input pieces themselves; check block `r >= k` is
//! `XOR_c E[r][c] · piece_c` with zfec's encoding matrix `E` (see
//! [`gf`] for how it is derived).  Any `k` distinct blocks give back the `k`
//! pieces.
//!
//! Everything here is pure: no I/O, no global state, no randomness.  The inner
//! loop runs on the fastest SIMD kernel the CPU has ([`Kernel::best`]).
//!
//! ```
//! use cairn_core::fec::Fec;
//! let fec = Fec::new(3, 10).unwrap();
//! let pieces: [&[u8]; 3] = [b"abcd", b"efgh", b"ijkl"];
//! let blocks = fec.encode_all(&pieces).unwrap();
//! assert_eq!(blocks[1], b"efgh");
//! let some: Vec<(usize, &[u8])> = [9, 4, 1].iter().map(|&i| (i, &blocks[i][..])).collect();
//! assert_eq!(fec.decode_all(&some).unwrap(), vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ijkl".to_vec()]);
//! ```

mod gf;
mod kernels;

pub use kernels::Kernel;

use thiserror::Error;

/// The largest `n` zfec supports (share numbers are bytes).
pub const MAX_SHARES: usize = 256;

/// Errors from [`Fec`]; every bad input gives one of these, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FecError {
    /// `k` and `n` do not satisfy `1 <= k <= n <= 256`.
    #[error("bad erasure-code parameters k={k}, n={n}: need 1 <= k <= n <= 256")]
    BadParameters { k: usize, n: usize },
    /// The wrong number of input pieces, input blocks or output buffers.
    #[error("wrong number of {what}: expected {expected}, got {got}")]
    WrongCount {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Pieces, blocks or output buffers of different lengths.
    #[error("unequal lengths: expected {expected} bytes, got {got}")]
    UnequalLengths { expected: usize, got: usize },
    /// A share number `>= n`.
    #[error("share number {shnum} out of range (n={n})")]
    ShareOutOfRange { shnum: usize, n: usize },
    /// The same share number given twice.
    #[error("duplicate share number {shnum}")]
    DuplicateShare { shnum: usize },
    /// The requested kernel cannot run on this CPU.
    #[error("kernel {0:?} is not supported by this CPU")]
    KernelUnavailable(Kernel),
}

/// A `k`-of-`n` zfec encoder/decoder.  Cheap to clone; immutable and shareable
/// across threads.
#[derive(Clone)]
pub struct Fec {
    k: usize,
    n: usize,
    /// Rows `k..n` of zfec's encoding matrix, row-major, `(n-k) × k`.
    check_rows: Vec<u8>,
    kernel: Kernel,
}

impl std::fmt::Debug for Fec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fec")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

impl Fec {
    /// A `k`-of-`n` code (`1 <= k <= n <= 256`) using the fastest kernel.
    pub fn new(k: usize, n: usize) -> Result<Fec, FecError> {
        Self::with_kernel(k, n, Kernel::best())
    }

    /// Like [`Fec::new`] with a chosen kernel (for tests and benchmarks).
    pub fn with_kernel(k: usize, n: usize, kernel: Kernel) -> Result<Fec, FecError> {
        if k == 0 || k > n || n > MAX_SHARES {
            return Err(FecError::BadParameters { k, n });
        }
        if !kernel.is_available() {
            return Err(FecError::KernelUnavailable(kernel));
        }
        let known: Vec<usize> = (0..k).collect();
        let targets: Vec<usize> = (k..n).collect();
        Ok(Fec {
            k,
            n,
            check_rows: gf::lagrange_rows(&known, &targets),
            kernel,
        })
    }

    /// Number of blocks needed to decode.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Total number of blocks.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The multiply-accumulate kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Row `shnum` of zfec's encoding matrix (`k` coefficients), `k <= shnum < n`.
    fn check_row(&self, shnum: usize) -> &[u8] {
        let r = shnum - self.k;
        &self.check_rows[r * self.k..(r + 1) * self.k]
    }

    /// Writes blocks: for each `(shnum, out)` computes block `shnum` from the
    /// `k` equal-length `pieces` (`shnum < k` gives a copy of piece `shnum`).
    /// Every `out` must have the pieces' length; share numbers must be `< n`
    /// and distinct.
    pub fn encode(
        &self,
        pieces: &[&[u8]],
        outputs: &mut [(usize, &mut [u8])],
    ) -> Result<(), FecError> {
        let len = self.check_pieces(pieces)?;
        let mut seen = [false; MAX_SHARES];
        for (shnum, out) in outputs.iter() {
            self.check_shnum(*shnum, &mut seen)?;
            if out.len() != len {
                return Err(FecError::UnequalLengths {
                    expected: len,
                    got: out.len(),
                });
            }
        }
        let mut coefs = Vec::new();
        let mut dsts: Vec<&mut [u8]> = Vec::new();
        for (shnum, out) in outputs.iter_mut() {
            if *shnum < self.k {
                out.copy_from_slice(pieces[*shnum]);
            } else {
                coefs.extend_from_slice(self.check_row(*shnum));
                dsts.push(&mut **out);
            }
        }
        kernels::dot(self.kernel, &coefs, pieces, &mut dsts);
        Ok(())
    }

    /// All `n` blocks, in share-number order.
    pub fn encode_all(&self, pieces: &[&[u8]]) -> Result<Vec<Vec<u8>>, FecError> {
        let len = self.check_pieces(pieces)?;
        let mut blocks: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let mut checks: Vec<Vec<u8>> = (self.k..self.n).map(|_| vec![0u8; len]).collect();
        let mut outputs: Vec<(usize, &mut [u8])> = checks
            .iter_mut()
            .enumerate()
            .map(|(i, b)| (self.k + i, &mut b[..]))
            .collect();
        self.encode(pieces, &mut outputs)?;
        blocks.extend(checks);
        Ok(blocks)
    }

    /// Rebuilds the `k` pieces from blocks `(shnum, bytes)` into `out` (`k`
    /// buffers of the block length).  Needs at least `k` blocks with distinct
    /// share numbers `< n`; with more than `k`, the pieces among them are
    /// used first, then the lowest-numbered check blocks.
    ///
    /// Only the missing pieces are computed: with `m` of them, this builds an
    /// `m × k` decoding matrix in `O(k·(k+m))` field operations (Lagrange
    /// interpolation) and runs `m` outputs through the kernel.
    pub fn decode(&self, blocks: &[(usize, &[u8])], out: &mut [&mut [u8]]) -> Result<(), FecError> {
        let k = self.k;
        if blocks.len() < k {
            return Err(FecError::WrongCount {
                what: "blocks",
                expected: k,
                got: blocks.len(),
            });
        }
        if out.len() != k {
            return Err(FecError::WrongCount {
                what: "output buffers",
                expected: k,
                got: out.len(),
            });
        }
        let len = blocks[0].1.len();
        let mut seen = [false; MAX_SHARES];
        for (shnum, b) in blocks {
            self.check_shnum(*shnum, &mut seen)?;
            if b.len() != len {
                return Err(FecError::UnequalLengths {
                    expected: len,
                    got: b.len(),
                });
            }
        }
        if let Some(o) = out.iter().find(|o| o.len() != len) {
            return Err(FecError::UnequalLengths {
                expected: len,
                got: o.len(),
            });
        }

        // Choose k blocks: every piece we have, then check blocks by number.
        let mut by_shnum: Vec<Option<&[u8]>> = vec![None; self.n];
        for (shnum, b) in blocks {
            by_shnum[*shnum] = Some(b);
        }
        let mut known: Vec<usize> = Vec::with_capacity(k);
        let mut inputs: Vec<&[u8]> = Vec::with_capacity(k);
        let mut missing: Vec<usize> = Vec::new();
        for (i, slot) in by_shnum[..k].iter().enumerate() {
            match slot {
                Some(b) => {
                    known.push(i);
                    inputs.push(b);
                    out[i].copy_from_slice(b);
                }
                None => missing.push(i),
            }
        }
        for (shnum, slot) in by_shnum.iter().enumerate().skip(k) {
            if known.len() == k {
                break;
            }
            if let Some(b) = slot {
                known.push(shnum);
                inputs.push(b);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let coefs = gf::lagrange_rows(&known, &missing);
        let mut dsts: Vec<&mut [u8]> = Vec::with_capacity(missing.len());
        let mut want = missing.iter().peekable();
        for (i, o) in out.iter_mut().enumerate() {
            if want.peek() == Some(&&i) {
                want.next();
                dsts.push(&mut **o);
            }
        }
        kernels::dot(self.kernel, &coefs, &inputs, &mut dsts);
        Ok(())
    }

    /// Like [`Fec::decode`], returning the `k` pieces as new vectors.
    pub fn decode_all(&self, blocks: &[(usize, &[u8])]) -> Result<Vec<Vec<u8>>, FecError> {
        let len = blocks.first().map_or(0, |b| b.1.len());
        let mut pieces: Vec<Vec<u8>> = (0..self.k).map(|_| vec![0u8; len]).collect();
        let mut outs: Vec<&mut [u8]> = pieces.iter_mut().map(|p| &mut p[..]).collect();
        self.decode(blocks, &mut outs)?;
        Ok(pieces)
    }

    /// Checks the pieces given to `encode`; returns their common length.
    fn check_pieces(&self, pieces: &[&[u8]]) -> Result<usize, FecError> {
        if pieces.len() != self.k {
            return Err(FecError::WrongCount {
                what: "pieces",
                expected: self.k,
                got: pieces.len(),
            });
        }
        let len = pieces[0].len();
        match pieces.iter().find(|p| p.len() != len) {
            Some(p) => Err(FecError::UnequalLengths {
                expected: len,
                got: p.len(),
            }),
            None => Ok(len),
        }
    }

    fn check_shnum(&self, shnum: usize, seen: &mut [bool; MAX_SHARES]) -> Result<(), FecError> {
        if shnum >= self.n {
            return Err(FecError::ShareOutOfRange { shnum, n: self.n });
        }
        if std::mem::replace(&mut seen[shnum], true) {
            return Err(FecError::DuplicateShare { shnum });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
