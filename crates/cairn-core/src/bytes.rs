//! One checked big-endian reader for every binary format the core decodes from a peer or
//! from disk (share headers, offsets tables, hash chains, lease records).
//!
//! [`Reader`] is a cursor over a borrowed `&[u8]`. Every read either returns the value and
//! advances, or returns [`Truncated`] and leaves the cursor where it was: nothing panics,
//! and nothing is allocated — slices borrow from the input, so a length read from untrusted
//! bytes can never make the reader reserve memory the input does not already hold.

use thiserror::Error;

/// The input ended before a read of `need` bytes at offset `at` (it holds `have` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("input truncated: need {need} bytes at offset {at}, have {have} in all")]
pub struct Truncated {
    pub at: usize,
    pub need: usize,
    pub have: usize,
}

/// A big-endian cursor over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    pub const fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    /// A reader at offset `at` of `data` (reads past the end report truncation at `at`).
    pub fn at(data: &'a [u8], at: usize) -> Reader<'a> {
        Reader { data, pos: at }
    }

    /// Where the next read starts.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor (0 if it is past the end).
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `len` bytes, borrowed.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], Truncated> {
        let truncated = Truncated {
            at: self.pos,
            need: len,
            have: self.data.len(),
        };
        let end = self.pos.checked_add(len).ok_or(truncated)?;
        let out = self.data.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Skip `len` bytes.
    pub fn skip(&mut self, len: usize) -> Result<(), Truncated> {
        self.bytes(len).map(|_| ())
    }

    /// The next `N` bytes, copied into an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, Truncated> {
        self.array::<1>().map(|[b]| b)
    }

    pub fn u16(&mut self) -> Result<u16, Truncated> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, Truncated> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, Truncated> {
        self.array().map(u64::from_be_bytes)
    }

    /// A big-endian unsigned integer of `width` bytes (1 to 8), widened: the formats whose
    /// field width depends on a version (CHK share layouts v1/v2: 4 or 8 bytes).
    /// A `width` outside `1..=8` is a caller's bug; it is refused as truncation rather than
    /// a panic, so no input can turn it into one.
    pub fn uint(&mut self, width: usize) -> Result<u64, Truncated> {
        if width == 0 || width > 8 {
            return Err(Truncated {
                at: self.pos,
                need: width,
                have: self.data.len(),
            });
        }
        let b = self.bytes(width)?;
        Ok(b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_advance_and_truncation_leaves_the_cursor() {
        let data = [1u8, 0, 2, 0, 0, 0, 3, 9];
        let mut r = Reader::new(&data);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(2));
        assert_eq!(r.u32(), Ok(3));
        assert_eq!(r.position(), 7);
        assert_eq!(
            r.u16(),
            Err(Truncated {
                at: 7,
                need: 2,
                have: 8
            })
        );
        assert_eq!(r.position(), 7);
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.remaining(), 0);
        assert!(r.bytes(0).is_ok());
    }

    #[test]
    fn huge_lengths_and_offsets_are_truncation() {
        let data = [0u8; 4];
        assert!(Reader::at(&data, usize::MAX).u8().is_err());
        assert!(Reader::at(&data, 2).bytes(usize::MAX).is_err());
        assert_eq!(Reader::at(&data, 9).remaining(), 0);
        assert!(Reader::new(&data).uint(9).is_err());
        assert!(Reader::new(&data).uint(0).is_err());
        assert_eq!(Reader::new(&[0, 0, 1, 2]).uint(4), Ok(0x102));
    }
}
