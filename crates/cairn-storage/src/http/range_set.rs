//! `RangeSet`: the byte ranges of an immutable share already written, sorted and merged.

use super::*;

/// Sorted, merged, half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            if b < s || a > e {
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        out.push((s, e));
        out.sort_unstable();
        self.0 = out;
    }

    /// Parts of `[start, end)` already in the set.
    pub fn overlaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.0
            .iter()
            .filter(|&&(a, b)| a < end && b > start)
            .map(|&(a, b)| (a.max(start), b.min(end)))
            .collect()
    }

    /// Parts of `[0, size)` not in the set.
    pub fn missing(&self, size: u64) -> Vec<ByteRange> {
        let mut out = Vec::new();
        let mut pos = 0;
        for &(a, b) in &self.0 {
            if a > pos {
                out.push(ByteRange {
                    start: pos,
                    end: a.min(size),
                });
            }
            pos = pos.max(b);
        }
        if pos < size {
            out.push(ByteRange {
                start: pos,
                end: size,
            });
        }
        out.retain(|r| r.start < r.end);
        out
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set() {
        let mut r = RangeSet::default();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(
            r.missing(50),
            vec![
                ByteRange { start: 0, end: 10 },
                ByteRange { start: 20, end: 30 },
                ByteRange { start: 40, end: 50 }
            ]
        );
        r.insert(15, 35);
        assert_eq!(r.0, vec![(10, 40)]);
        assert_eq!(r.overlaps(0, 12), vec![(10, 12)]);
        r.insert(0, 10);
        r.insert(40, 50);
        assert!(r.missing(50).is_empty());
    }
}
