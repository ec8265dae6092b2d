//! The small identifiers every layer passes around, as newtypes rather than bare integers,
//! so a share number cannot be used as a server index (or the reverse) and each is checked
//! once where it enters from the network or disk.
//!
//! The storage index (`StorageIndex`) lives with the caps that derive it, in
//! [`crate::cap::StorageIndex`], and is re-exported here so the three are found together.

use core::fmt;

pub use crate::cap::StorageIndex;

/// A share's number within a file: `0..N` with `N <= 256` (zfec's limit), so `0..=255`.
///
/// Tahoe's HTTP schema allows any unsigned integer; cairn refuses anything above 255 where
/// it parses one ([`ShareNum::try_from`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ShareNum(pub u8);

impl ShareNum {
    /// The largest share number.
    pub const MAX: ShareNum = ShareNum(u8::MAX);

    /// The number, widened (for indexing arrays of shares and for arithmetic).
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// Every share number below `n` (`n` up to 256): the shares of an N-share file.
    pub fn below(n: u16) -> impl DoubleEndedIterator<Item = ShareNum> + ExactSizeIterator {
        (0..n.min(256)).map(|i| ShareNum(i as u8))
    }
}

impl From<u8> for ShareNum {
    fn from(n: u8) -> Self {
        ShareNum(n)
    }
}

impl From<ShareNum> for u8 {
    fn from(n: ShareNum) -> Self {
        n.0
    }
}

impl From<ShareNum> for u16 {
    fn from(n: ShareNum) -> Self {
        u16::from(n.0)
    }
}

impl From<ShareNum> for u64 {
    fn from(n: ShareNum) -> Self {
        u64::from(n.0)
    }
}

/// A number above 255 where a share number was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("share number {0} is out of range (0..=255)")]
pub struct ShareNumOutOfRange(pub u64);

macro_rules! share_num_try_from {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for ShareNum {
            type Error = ShareNumOutOfRange;
            fn try_from(n: $t) -> Result<Self, Self::Error> {
                u8::try_from(n).map(ShareNum).map_err(|_| ShareNumOutOfRange(n as u64))
            }
        }
    )*};
}
share_num_try_from!(u16, u32, u64, usize);

impl fmt::Debug for ShareNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sh{}", self.0)
    }
}

impl fmt::Display for ShareNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A storage server as one operation numbers them: its position in the list the operation
/// was given (normally the file's permuted server order). Only meaningful together with
/// that list; the I/O crates index their server tables with [`ServerIndex::get`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServerIndex(pub u32);

impl ServerIndex {
    /// The position, for indexing the operation's server list.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// The index of position `i` of a list; `None` past `u32::MAX` (no grid is that large).
    pub fn from_position(i: usize) -> Option<ServerIndex> {
        u32::try_from(i).ok().map(ServerIndex)
    }
}

impl From<u32> for ServerIndex {
    fn from(i: u32) -> Self {
        ServerIndex(i)
    }
}

impl fmt::Debug for ServerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server#{}", self.0)
    }
}

impl fmt::Display for ServerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_numbers_above_255_are_refused() {
        assert_eq!(ShareNum::try_from(255u64), Ok(ShareNum(255)));
        assert_eq!(ShareNum::try_from(256u64), Err(ShareNumOutOfRange(256)));
        assert_eq!(ShareNum::try_from(u64::MAX), Err(ShareNumOutOfRange(u64::MAX)));
        assert_eq!(ShareNum::below(256).count(), 256);
        assert_eq!(ShareNum::below(300).last(), Some(ShareNum(255)));
        assert_eq!(ShareNum::below(0).count(), 0);
    }

    #[test]
    fn server_index_positions() {
        assert_eq!(ServerIndex::from_position(7), Some(ServerIndex(7)));
        assert_eq!(ServerIndex(7).get(), 7);
        assert_eq!(ServerIndex::from_position(usize::MAX), None);
    }
}
