//! Arithmetic in GF(2^8) as zfec defines it, and the coding matrices.
//!
//! The field is GF(2)[x] / (x^8 + x^4 + x^3 + x^2 + 1), i.e. polynomial 0x11d
//! (zfec's `Pp = "101110001"`), with generator alpha = x = 2.  All tables are
//! computed at compile time: nothing is initialised at run time and there is
//! no global mutable state.
//!
//! # The code
//!
//! zfec evaluates points `x_0 = 0` and `x_r = alpha^(r-1)` for `1 <= r < n`:
//! its n×k matrix `V` has row 0 = (1, 0, ..., 0) and row `r` = `x_r^c`, and
//! its encoding matrix is `E = V · V[0..k]^-1`.  In other words the k input
//! pieces are the values at `x_0..x_{k-1}` of the unique polynomial `P` of
//! degree < k through them, and block `r` is `P(x_r)`.  So every entry of `E`
//! (and of any decoding matrix) is a Lagrange basis polynomial evaluated at a
//! point, which this module computes directly in `O(k·(k+rows))` field
//! operations instead of inverting matrices.  The result is the same matrix
//! zfec computes (a matrix inverse is unique); the zfec vectors and the unit
//! tests below (against a plain Gauss-Jordan construction) check it.

/// The field polynomial, x^8 + x^4 + x^3 + x^2 + 1.
pub(crate) const POLY: u16 = 0x11d;

const fn build_exp() -> [u8; 512] {
    let mut t = [0u8; 512];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        t[i] = x as u8;
        t[i + 255] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLY;
        }
        i += 1;
    }
    t[510] = t[0];
    t[511] = t[1];
    t
}

const fn build_log(exp: &[u8; 512]) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        t[exp[i] as usize] = i as u8;
        i += 1;
    }
    t
}

/// `EXP[i] = alpha^i`, doubled so that `EXP[LOG[a] + LOG[b]]` needs no reduction.
pub(crate) static EXP: [u8; 512] = build_exp();
/// `LOG[alpha^i] = i`; `LOG[0]` is meaningless (0).
pub(crate) static LOG: [u8; 256] = build_log(&build_exp());

const fn mul_const(a: u8, b: u8) -> u8 {
    // Carry-less multiply with reduction; only used to build tables.
    let mut a = a as u16;
    let mut b = b;
    let mut r: u16 = 0;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        a <<= 1;
        if a & 0x100 != 0 {
            a ^= POLY;
        }
        b >>= 1;
    }
    r as u8
}

const fn build_mul_table() -> [[u8; 256]; 256] {
    let mut t = [[0u8; 256]; 256];
    let mut a = 0;
    while a < 256 {
        let mut b = 0;
        while b < 256 {
            t[a][b] = mul_const(a as u8, b as u8);
            b += 1;
        }
        a += 1;
    }
    t
}

/// `MUL_TABLE[c][x] = c·x` (64 KiB), used by the scalar kernel.
pub(crate) static MUL_TABLE: [[u8; 256]; 256] = build_mul_table();

const fn build_nibble_tables() -> [[u8; 32]; 256] {
    let mut t = [[0u8; 32]; 256];
    let mut c = 0;
    while c < 256 {
        let mut i = 0;
        while i < 16 {
            t[c][i] = mul_const(c as u8, i as u8);
            t[c][16 + i] = mul_const(c as u8, (i << 4) as u8);
            i += 1;
        }
        c += 1;
    }
    t
}

/// Split-nibble tables for the shuffle kernels: `NIBBLE[c][i] = c·i` and
/// `NIBBLE[c][16 + i] = c·(i << 4)` for `i < 16`, so that
/// `c·x = NIBBLE[c][x & 15] ^ NIBBLE[c][16 + (x >> 4)]`.
pub(crate) static NIBBLE: [[u8; 32]; 256] = build_nibble_tables();

const fn build_affine() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut c = 0;
    while c < 256 {
        // Multiplication by c is GF(2)-linear: c·x = XOR over set bits j of x
        // of c·2^j.  GF2P8AFFINEQB computes output bit i as
        // parity(A.byte[7 - i] & x), so byte 7-i of A holds, for each input
        // bit j, whether bit i of c·2^j is set.
        let mut m: u64 = 0;
        let mut i = 0;
        while i < 8 {
            let mut row: u64 = 0;
            let mut j = 0;
            while j < 8 {
                if (mul_const(c as u8, 1 << j) >> i) & 1 != 0 {
                    row |= 1 << j;
                }
                j += 1;
            }
            m |= row << (8 * (7 - i));
            i += 1;
        }
        t[c] = m;
        c += 1;
    }
    t
}

/// 8×8 bit matrices for GF2P8AFFINEQB: multiplying by `c` in the 0x11d field
/// is the affine map `AFFINE[c]` (with zero offset).  GF2P8MULB cannot be used
/// because it works in the AES field 0x11b.
pub(crate) static AFFINE: [u64; 256] = build_affine();

/// `a·b`.
#[cfg(test)]
#[inline]
pub(crate) fn mul(a: u8, b: u8) -> u8 {
    MUL_TABLE[a as usize][b as usize]
}

/// `x_r`, the point at which zfec evaluates block `r`: 0 for block 0 and
/// `alpha^(r-1)` otherwise (`r < 256`).
#[inline]
pub(crate) fn point(r: usize) -> u8 {
    if r == 0 {
        0
    } else {
        EXP[r - 1]
    }
}

/// Lagrange coefficients: for the k distinct points `xs` (the share numbers of
/// the blocks one has) and each target share number `t` in `targets` (none of
/// them in `known`), one row of `known.len()` coefficients such that block
/// `t = XOR_s row[s] · block known[s]`.  Returned row-major, `targets.len()`
/// rows.
///
/// `known` must be distinct share numbers < 256 and disjoint from `targets`;
/// the callers guarantee it.
pub(crate) fn lagrange_rows(known: &[usize], targets: &[usize]) -> Vec<u8> {
    let k = known.len();
    let xs: Vec<u8> = known.iter().map(|&s| point(s)).collect();
    // log of w_s = prod_{t != s} (x_s - x_t)  (subtraction is XOR).
    let log_w: Vec<u32> = (0..k)
        .map(|s| {
            let mut acc = 0u32;
            for t in 0..k {
                if t != s {
                    acc += LOG[(xs[s] ^ xs[t]) as usize] as u32;
                }
            }
            acc % 255
        })
        .collect();
    let mut out = vec![0u8; targets.len() * k];
    for (row, &t) in out.chunks_exact_mut(k.max(1)).zip(targets) {
        let xt = point(t);
        // log of N_t = prod_s (x_t - x_s); nonzero because x_t is not a known point.
        let log_n: u32 = xs
            .iter()
            .map(|&x| LOG[(xt ^ x) as usize] as u32)
            .sum::<u32>()
            % 255;
        for s in 0..k {
            // L_s(x_t) = N_t / ((x_t - x_s) · w_s)
            let den = (LOG[(xt ^ xs[s]) as usize] as u32 + log_w[s]) % 255;
            row[s] = EXP[((log_n + 255 - den) % 255) as usize];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_mul(a: u8, b: u8) -> u8 {
        if a == 0 || b == 0 {
            0
        } else {
            EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
        }
    }

    fn inv(a: u8) -> u8 {
        EXP[255 - LOG[a as usize] as usize]
    }

    #[test]
    fn tables_are_consistent() {
        assert_eq!(EXP[8], 0x1d, "alpha^8 = x^4+x^3+x^2+1");
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), slow_mul(a, b));
                assert_eq!(mul(a, b), mul(b, a));
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1);
            }
            let t = &NIBBLE[a as usize];
            for x in 0..=255u8 {
                assert_eq!(t[(x & 15) as usize] ^ t[16 + (x >> 4) as usize], mul(a, x));
            }
        }
        // The 255 non-zero points are distinct (alpha is a generator).
        let mut seen = [false; 256];
        for r in 0..256 {
            assert!(!seen[point(r) as usize]);
            seen[point(r) as usize] = true;
        }
    }

    /// Software model of GF2P8AFFINEQB on one byte.
    fn affine_byte(a: u64, x: u8) -> u8 {
        let mut r = 0u8;
        for i in 0..8 {
            let row = (a >> (8 * (7 - i))) as u8;
            r |= (((row & x).count_ones() & 1) as u8) << i;
        }
        r
    }

    #[test]
    fn affine_matrices_multiply() {
        for c in 0..=255u8 {
            for x in 0..=255u8 {
                assert_eq!(affine_byte(AFFINE[c as usize], x), mul(c, x));
            }
        }
    }

    /// zfec's construction, spelled out: V (n×k), Gauss-Jordan inverse of the
    /// top k×k, E = V · inv.
    fn zfec_style_matrix(k: usize, n: usize) -> Vec<Vec<u8>> {
        let v: Vec<Vec<u8>> = (0..n)
            .map(|r| {
                (0..k)
                    .map(|c| {
                        if r == 0 {
                            u8::from(c == 0)
                        } else {
                            EXP[((r - 1) * c) % 255]
                        }
                    })
                    .collect()
            })
            .collect();
        // Invert the top k×k by Gauss-Jordan on [A | I].
        let mut a: Vec<Vec<u8>> = (0..k)
            .map(|r| {
                let mut row = v[r].clone();
                row.extend((0..k).map(|c| u8::from(c == r)));
                row
            })
            .collect();
        for col in 0..k {
            let piv = (col..k).find(|&r| a[r][col] != 0).expect("singular");
            a.swap(col, piv);
            let f = inv(a[col][col]);
            for x in a[col].iter_mut() {
                *x = mul(*x, f);
            }
            for r in 0..k {
                if r != col && a[r][col] != 0 {
                    let f = a[r][col];
                    let pr = a[col].clone();
                    for (x, p) in a[r].iter_mut().zip(pr) {
                        *x ^= mul(f, p);
                    }
                }
            }
        }
        let invm: Vec<Vec<u8>> = a.into_iter().map(|r| r[k..].to_vec()).collect();
        (0..n)
            .map(|r| {
                (0..k)
                    .map(|c| (0..k).fold(0u8, |acc, i| acc ^ mul(v[r][i], invm[i][c])))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lagrange_matches_vandermonde_construction() {
        for &(k, n) in &[(1, 1), (1, 5), (2, 3), (3, 10), (5, 9), (17, 40), (40, 256)] {
            let e = zfec_style_matrix(k, n);
            let known: Vec<usize> = (0..k).collect();
            let targets: Vec<usize> = (k..n).collect();
            let rows = lagrange_rows(&known, &targets);
            for (i, &t) in targets.iter().enumerate() {
                assert_eq!(&rows[i * k..(i + 1) * k], &e[t][..], "k={k} n={n} row {t}");
            }
            for (r, row) in e.iter().enumerate().take(k) {
                let want: Vec<u8> = (0..k).map(|c| u8::from(c == r)).collect();
                assert_eq!(*row, want);
            }
        }
    }
}
