//! A bit-exact model of CPython 3.11's `set` (Objects/setobject.c) for small non-negative
//! `int` keys, used only to reproduce the *iteration order* Tahoe's placement code sees.
//!
//! For an `int` key `x` with `0 <= x < 2**61 - 1`, `hash(x) == x`, so a CPython set of such
//! ints iterates in an order that is a pure function of the sequence of operations applied
//! to it: open addressing over a power-of-two table, 9 linear probes then the
//! `i = 5*i + 1 + perturb` recurrence (`perturb >>= 5`), deleted entries left as dummies,
//! a new key reusing the *last* dummy seen on its probe path (that is what 3.11 does; the
//! "first dummy" reading of older releases disagrees with the interpreter), a resize to the
//! smallest power of two `> 4*used` once `fill*5 >= mask*3`, `set(s)` / `s.copy()` through
//! `set_merge`, and `a - b` through `set_difference` (copy-and-discard when
//! `len(a) >> 2 > len(b)`, else a fresh set filled in `a`'s iteration order).
//!
//! The model was checked against the real interpreter (Python 3.11.7) on 60 000 random
//! sequences of add / discard / `set(list)` / `set(set)` / `a - b` with keys below 255;
//! see vectors/placement/README.md.

const LINEAR_PROBES: usize = 9;
const PERTURB_SHIFT: u32 = 5;

/// CPython's probe sequence for `key` in a table of `mask + 1` slots, endless: runs of
/// slots to look at in order, each a slot and the `LINEAR_PROBES` after it when they fit
/// below the mask, else the slot alone; then on by the perturbed recurrence.
fn probe_runs(mask: usize, key: u64) -> impl Iterator<Item = std::ops::RangeInclusive<usize>> {
    let mut i = (key as usize) & mask;
    let mut perturb = key;
    std::iter::from_fn(move || {
        let probes = if i + LINEAR_PROBES <= mask {
            LINEAR_PROBES
        } else {
            0
        };
        let run = i..=i + probes;
        perturb >>= PERTURB_SHIFT;
        i = (i
            .wrapping_mul(5)
            .wrapping_add(1)
            .wrapping_add(perturb as usize))
            & mask;
        Some(run)
    })
}
const MIN_SIZE: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Unused,
    Dummy,
    Key(u64),
}

/// A CPython-3.11-shaped set of small ints (hash == value).
#[derive(Clone, Debug)]
pub(crate) struct PySet {
    table: Vec<Slot>,
    fill: usize,
    used: usize,
}

impl Default for PySet {
    fn default() -> Self {
        Self::new()
    }
}

impl PySet {
    /// `set()`
    pub(crate) fn new() -> Self {
        PySet {
            table: vec![Slot::Unused; MIN_SIZE],
            fill: 0,
            used: 0,
        }
    }

    /// `set(iterable)` where the iterable is not a set (a list, a range, dict keys): one
    /// `add` per item, in order.
    pub(crate) fn from_iter_adds<I: IntoIterator<Item = u64>>(items: I) -> Self {
        let mut s = PySet::new();
        for k in items {
            s.add(k);
        }
        s
    }

    /// `set(other)` / `other.copy()` where `other` is a set (`set_merge` into an empty set).
    pub(crate) fn copy_of(other: &PySet) -> Self {
        let mut s = PySet::new();
        s.merge(other);
        s
    }

    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Iteration in CPython order (table slot order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.table.iter().filter_map(|s| match s {
            Slot::Key(k) => Some(*k),
            _ => None,
        })
    }

    pub(crate) fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }

    fn lookup(&self, key: u64) -> Option<usize> {
        for run in probe_runs(self.mask(), key) {
            for j in run {
                match self.table[j] {
                    Slot::Unused => return None,
                    Slot::Key(k) if k == key => return Some(j),
                    _ => {}
                }
            }
        }
        unreachable!("the probe sequence never ends")
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.lookup(key).is_some()
    }

    /// `s.add(key)` (`set_add_entry`).
    pub(crate) fn add(&mut self, key: u64) {
        let mask = self.mask();
        let mut freeslot: Option<usize> = None;
        for run in probe_runs(mask, key) {
            for j in run {
                match self.table[j] {
                    Slot::Unused => {
                        if let Some(f) = freeslot {
                            self.used += 1;
                            self.table[f] = Slot::Key(key);
                            return;
                        }
                        self.fill += 1;
                        self.used += 1;
                        self.table[j] = Slot::Key(key);
                        if self.fill * 5 >= mask * 3 {
                            self.resize(self.used * 4);
                        }
                        return;
                    }
                    Slot::Dummy => freeslot = Some(j),
                    Slot::Key(k) if k == key => return,
                    Slot::Key(_) => {}
                }
            }
        }
        unreachable!("the probe sequence never ends")
    }

    /// `s.discard(key)`; returns whether it was present (`s.remove` raises when not).
    pub(crate) fn discard(&mut self, key: u64) -> bool {
        match self.lookup(key) {
            Some(j) => {
                self.table[j] = Slot::Dummy;
                self.used -= 1;
                true
            }
            None => false,
        }
    }

    fn insert_clean(table: &mut [Slot], key: u64) {
        for mut run in probe_runs(table.len() - 1, key) {
            if let Some(j) = run.find(|&j| table[j] == Slot::Unused) {
                table[j] = Slot::Key(key);
                return;
            }
        }
        unreachable!("the probe sequence never ends")
    }

    /// `set_table_resize(so, minused)`.
    fn resize(&mut self, minused: usize) {
        let mut newsize = MIN_SIZE;
        while newsize <= minused {
            newsize <<= 1;
        }
        if newsize == MIN_SIZE && self.table.len() == MIN_SIZE && self.fill == self.used {
            return; // small table without dummies: nothing to do
        }
        let old = std::mem::replace(&mut self.table, vec![Slot::Unused; newsize]);
        for slot in old {
            if let Slot::Key(k) = slot {
                Self::insert_clean(&mut self.table, k);
            }
        }
        self.fill = self.used;
    }

    /// `set_merge(self, other)` (`self.update(other)` for a set argument).
    fn merge(&mut self, other: &PySet) {
        if other.used == 0 {
            return;
        }
        if (self.fill + other.used) * 5 >= self.mask() * 3 {
            self.resize((self.used + other.used) * 2);
        }
        if self.fill == 0 && self.mask() == other.mask() && other.fill == other.used {
            self.table.clone_from(&other.table);
            self.fill = other.fill;
            self.used = other.used;
            return;
        }
        if self.fill == 0 {
            self.fill = other.used;
            self.used = other.used;
            for k in other.iter() {
                Self::insert_clean(&mut self.table, k);
            }
            return;
        }
        for k in other.iter() {
            self.add(k);
        }
    }

    /// `self - other` (`set_difference`).
    pub(crate) fn difference(&self, other: &PySet) -> PySet {
        if (self.used >> 2) > other.used {
            // set_copy_and_difference: copy, discard other's keys, purge dummies if > 1/4.
            let mut r = PySet::copy_of(self);
            for k in other.iter() {
                r.discard(k);
            }
            if r.fill - r.used > r.mask() / 4 {
                r.resize(r.used * 4);
            }
            return r;
        }
        let mut r = PySet::new();
        for k in self.iter() {
            if !other.contains(k) {
                r.add(k);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Orders observed on CPython 3.11.7.
    #[test]
    fn matches_cpython_examples() {
        assert_eq!(PySet::from_iter_adds([3, 9]).to_vec(), vec![9, 3]);
        assert_eq!(PySet::from_iter_adds([9, 2]).to_vec(), vec![9, 2]);
        assert_eq!(
            PySet::from_iter_adds(0..20).to_vec(),
            (0..20).collect::<Vec<_>>()
        );
        // the "last dummy wins" rule
        let mut s = PySet::from_iter_adds([1, 0, 0, 4, 3, 6, 3, 4, 4, 6, 0, 5]);
        for x in [2, 5, 6, 4, 1, 0, 3] {
            s.discard(x);
        }
        for x in [7, 3, 6] {
            s.add(x);
        }
        assert_eq!(s.to_vec(), vec![3, 7, 6]);
    }
}
