//! First-read reuse: a servermap query reads the first bytes of every share it finds
//! (4000 in read and write modes), and a retrieve or an in-place update that then wants a
//! range inside those bytes gets them from here instead of sending the same read again.
//!
//! The bytes are what the servermap judged the share's version by, so a later machine
//! working on that version may use them. A read is answered only when the recorded bytes
//! cover it completely, or when the recorded answer was shorter than asked (the share
//! ended there, so nothing beyond it exists: the answer is what the server would send).

use std::collections::BTreeMap;

use crate::client::mutable::{ServerIndex, ShareNum};

/// One share's first read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FirstRead {
    /// The bytes from offset 0.
    data: Vec<u8>,
    /// The length asked for: fewer bytes than this means the share ended.
    asked: u64,
}

/// `(server, share) ->` first read. Pure data: a driver shares one behind a lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirstReads {
    reads: BTreeMap<(ServerIndex, ShareNum), FirstRead>,
}

impl FirstReads {
    pub fn new() -> FirstReads {
        FirstReads::default()
    }

    /// Record the answer `data` to a read of `[0, asked)` of `shnum` on `server` (a newer
    /// answer replaces an older one: it reflects the share as it is now).
    pub fn record(&mut self, server: ServerIndex, shnum: ShareNum, data: &[u8], asked: u64) {
        self.reads.insert(
            (server, shnum),
            FirstRead {
                data: data.to_vec(),
                asked,
            },
        );
    }

    /// Bytes `[offset, offset + len)` of the share, as the server would answer them (short
    /// where the share ends), if the first read determines them; `None` otherwise.
    pub fn get(
        &self,
        server: ServerIndex,
        shnum: ShareNum,
        offset: u64,
        len: u64,
    ) -> Option<&[u8]> {
        let r = self.reads.get(&(server, shnum))?;
        let have = r.data.len() as u64;
        let end = offset.checked_add(len)?;
        let share_ended = have < r.asked;
        if end > have && !share_ended {
            return None;
        }
        // Both bounds are at most `have`, a `usize` length.
        let from = offset.min(have) as usize;
        let to = end.min(have) as usize;
        r.data.get(from..to)
    }

    /// Shares recorded.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn covered_reads_are_answered_and_others_are_not() {
        let mut f = FirstReads::new();
        let share: Vec<u8> = (0..100u8).collect();
        f.record(ServerIndex(1), ShareNum(0), &share[..40], 40);
        assert_eq!(
            f.get(ServerIndex(1), ShareNum(0), 0, 40),
            Some(&share[..40])
        );
        assert_eq!(
            f.get(ServerIndex(1), ShareNum(0), 10, 5),
            Some(&share[10..15])
        );
        assert_eq!(f.get(ServerIndex(1), ShareNum(0), 40, 0), Some(&[][..]));
        // one byte beyond what was read: the server must be asked
        assert_eq!(f.get(ServerIndex(1), ShareNum(0), 39, 2), None);
        // another share or server: nothing known
        assert_eq!(f.get(ServerIndex(1), ShareNum(1), 0, 1), None);
        assert_eq!(f.get(ServerIndex(2), ShareNum(0), 0, 1), None);
        // overflow is never answered
        assert_eq!(f.get(ServerIndex(1), ShareNum(0), u64::MAX, 2), None);
    }

    #[test]
    fn a_short_first_read_is_the_whole_share() {
        let mut f = FirstReads::new();
        f.record(ServerIndex(0), ShareNum(3), b"abc", 4000);
        assert_eq!(f.get(ServerIndex(0), ShareNum(3), 1, 100), Some(&b"bc"[..]));
        assert_eq!(f.get(ServerIndex(0), ShareNum(3), 3, 10), Some(&[][..]));
        assert_eq!(f.get(ServerIndex(0), ShareNum(3), 50, 10), Some(&[][..]));
    }

    #[test]
    fn a_newer_answer_replaces_the_old() {
        let mut f = FirstReads::new();
        f.record(ServerIndex(0), ShareNum(0), b"old bytes", 9);
        f.record(ServerIndex(0), ShareNum(0), b"new", 9);
        assert_eq!(f.get(ServerIndex(0), ShareNum(0), 0, 3), Some(&b"new"[..]));
        assert_eq!(f.len(), 1);
    }

    proptest! {
        /// Against the share itself: an answer is exactly what the server would send, and
        /// every read inside the recorded bytes is answered.
        #[test]
        fn never_wrong_bytes(
            share in proptest::collection::vec(any::<u8>(), 0..300),
            asked in 0u64..400,
            offset in 0u64..450,
            len in 0u64..450,
        ) {
            let first = &share[..share.len().min(asked as usize)];
            let mut f = FirstReads::new();
            f.record(ServerIndex(7), ShareNum(2), first, asked);
            let sl = share.len() as u64;
            let expect = &share[offset.min(sl) as usize..(offset + len).min(sl) as usize];
            match f.get(ServerIndex(7), ShareNum(2), offset, len) {
                Some(got) => {
                    prop_assert_eq!(got, expect);
                }
                None => {
                    // only refused when the read reaches past what was read of a share
                    // that may go on
                    prop_assert!(offset + len > first.len() as u64);
                    prop_assert!(first.len() as u64 >= asked);
                }
            }
        }
    }
}
