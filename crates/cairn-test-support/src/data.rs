//! The seeded data generator: deterministic pseudo-random bytes (xorshift64), so tests need
//! no RNG to make file contents and every run makes the same ones.

/// `len` bytes determined by `seed`; different seeds give different streams.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every `k`-subset of `0..n`, each in increasing order, in lexicographic order.
pub fn k_subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn rec(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            rec(i + 1, n, k, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(0, n, k, &mut Vec::new(), &mut out);
    out
}

/// The bytes of a hex string from a vector file (test input: panics, naming it, on bad hex).
pub fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex: {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .unwrap_or_else(|_| panic!("bad hex at {i} in {text:?}"))
        })
        .collect()
}

/// The bytes of standard, padded base64 from a vector file (test input: panics on bad input).
pub fn b64(text: &str) -> Vec<u8> {
    cairn_core::storage::gbs::b64::decode(text).unwrap_or_else(|| panic!("bad base64: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(bytes(1000, 7), bytes(1000, 7));
        assert_eq!(bytes(10, 7), bytes(1000, 7)[..10]);
        // Neighbouring seeds must not collapse into one stream.
        for s in 0..64 {
            assert_ne!(bytes(64, s), bytes(64, s + 1), "seed {s}");
        }
        assert!(bytes(0, 1).is_empty());
    }
}
