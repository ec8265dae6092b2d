//! Encoded CHK files for the simulations, made with the core's encoder once per process and
//! shared by every schedule that asks for the same one (encoding is the slow part of a
//! schedule, and a few dozen shapes cover the cases).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cairn_core::cap::ChkReadCap;
use cairn_core::chk::params::LayoutVersion;
use cairn_core::chk::{encode_file, EncodingParams};

use crate::data;

/// The shape of an encoded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub len: usize,
    pub k: u16,
    pub n: u16,
    pub segment_size: u64,
    pub layout: LayoutVersion,
}

/// A file, its read cap and its `N` shares (index = share number).
#[derive(Debug)]
pub struct ChkFile {
    pub shape: Shape,
    pub plaintext: Vec<u8>,
    pub cap: ChkReadCap,
    pub shares: Vec<Vec<u8>>,
}

/// The file of `shape` (its bytes from the seeded generator), encoded once per process.
/// `shape.len` must be at least 1 (smaller files are literal caps, never encoded).
pub fn chk_file(shape: Shape) -> Arc<ChkFile> {
    static CACHE: OnceLock<Mutex<HashMap<Shape, Arc<ChkFile>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(f) = cache.lock().expect("no panic while held").get(&shape) {
        return f.clone();
    }
    let seed = (shape.len as u64) ^ (u64::from(shape.k) << 32) ^ (u64::from(shape.n) << 40);
    let plaintext = data::bytes(shape.len, seed);
    let params = EncodingParams::new(shape.k, shape.k, shape.n, shape.segment_size)
        .expect("simulation shapes are valid");
    let key = [(seed % 251) as u8; 16];
    let encoded = encode_file(&params, key, &plaintext, Some(shape.layout))
        .expect("simulation shapes encode");
    let f = Arc::new(ChkFile {
        shape,
        cap: encoded.trailer.read_cap(),
        shares: encoded.shares,
        plaintext,
    });
    cache
        .lock()
        .expect("no panic while held")
        .entry(shape)
        .or_insert(f)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_encoding_per_shape() {
        let shape = Shape {
            len: 5000,
            k: 2,
            n: 3,
            segment_size: 1024,
            layout: LayoutVersion::V2,
        };
        let a = chk_file(shape);
        let b = chk_file(shape);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.shares.len(), 3);
        assert_eq!(a.plaintext.len(), 5000);
        assert_eq!(a.cap.size(), 5000);
    }
}
