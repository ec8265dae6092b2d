//! Merkle hash trees exactly as Tahoe builds them (`allmydata/hashtree.py`).
//!
//! The tree is a complete binary tree stored breadth first: node 0 is the root, the
//! children of `i` are `2i+1` and `2i+2`. The leaf row is padded to a power of two with
//! `empty_leaf_hash(j)` (`j` = leaf position). A tree of one leaf has that leaf as its
//! root; a tree of zero leaves has `empty_leaf_hash(0)` as its root.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::hashutil::{tagged_hash, tagged_pair_hash, tags, Hash};

/// Padding leaf for position `i`.
pub fn empty_leaf_hash(i: usize) -> Hash {
    tagged_hash(tags::MERKLE_EMPTY_LEAF, i.to_string().as_bytes())
}

/// Internal node from its two children.
pub fn pair_hash(left: &Hash, right: &Hash) -> Hash {
    tagged_pair_hash(tags::MERKLE_INTERNAL_NODE, left, right)
}

/// Smallest power of two `>= n` (1 for n = 0).
pub fn roundup_pow2(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// Number of nodes in a tree over `num_leaves` leaves.
pub fn tree_len(num_leaves: usize) -> usize {
    2 * roundup_pow2(num_leaves) - 1
}

fn sibling(i: usize) -> usize {
    if i % 2 == 1 {
        i + 1
    } else {
        i - 1
    }
}

fn parent(i: usize) -> usize {
    (i - 1) / 2
}

/// Indices of the sibling chain from node `i` up to (not including) the root.
fn needed_for(i: usize) -> impl Iterator<Item = usize> {
    let mut here = i;
    std::iter::from_fn(move || {
        if here == 0 {
            return None;
        }
        let s = sibling(here);
        here = parent(here);
        Some(s)
    })
}

/// In a tree of `len` nodes whose leaves start at `first_leaf`: the indices of the hashes
/// that check leaf `leaf` against the root (the sibling chain, plus the leaf itself if
/// asked); empty for an out-of-range leaf.
fn needed_hashes(
    first_leaf: usize,
    len: usize,
    leaf: usize,
    include_leaf: bool,
) -> BTreeSet<usize> {
    let i = first_leaf + leaf;
    if i >= len {
        return BTreeSet::new();
    }
    let mut set: BTreeSet<usize> = needed_for(i).collect();
    if include_leaf {
        set.insert(i);
    }
    set
}

/// A complete tree over known leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTree {
    nodes: Vec<Hash>,
    first_leaf: usize,
}

impl HashTree {
    pub fn new(leaves: &[Hash]) -> HashTree {
        let p = roundup_pow2(leaves.len());
        let mut nodes = vec![[0u8; 32]; 2 * p - 1];
        let first_leaf = p - 1;
        for j in 0..p {
            nodes[first_leaf + j] = match leaves.get(j) {
                Some(h) => *h,
                None => empty_leaf_hash(j),
            };
        }
        for i in (0..first_leaf).rev() {
            nodes[i] = pair_hash(&nodes[2 * i + 1], &nodes[2 * i + 2]);
        }
        HashTree { nodes, first_leaf }
    }

    pub fn root(&self) -> Hash {
        self.nodes[0]
    }

    /// All nodes, root first: the on-disk form of a block or crypttext hash tree.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    pub fn num_leaf_slots(&self) -> usize {
        self.first_leaf + 1
    }

    /// Hash indices someone holding leaf `leaf` needs to check it against the root
    /// (Tahoe's `needed_hashes`): the sibling chain, plus the leaf itself if asked.
    /// Out-of-range leaves give an empty set.
    pub fn needed_hashes(&self, leaf: usize, include_leaf: bool) -> BTreeSet<usize> {
        needed_hashes(self.first_leaf, self.nodes.len(), leaf, include_leaf)
    }

    /// `(index, hash)` pairs for [`Self::needed_hashes`].
    pub fn chain(&self, leaf: usize, include_leaf: bool) -> Vec<(usize, Hash)> {
        self.needed_hashes(leaf, include_leaf)
            .into_iter()
            .map(|i| (i, self.nodes[i]))
            .collect()
    }
}

/// Why a set of hashes was refused by an [`IncompleteHashTree`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HashTreeError {
    #[error("hash mismatch at node {index} of {len}{}", leaf_note(*index, *first_leaf))]
    BadHash {
        index: usize,
        len: usize,
        first_leaf: usize,
    },
    #[error("not enough hashes to validate node {index} (missing node {missing})")]
    NotEnoughHashes { index: usize, missing: usize },
    #[error("hash index {index} out of range for a tree of {len} nodes")]
    OutOfRange { index: usize, len: usize },
}

fn leaf_note(index: usize, first_leaf: usize) -> String {
    if index >= first_leaf {
        format!(" (leaf {})", index - first_leaf)
    } else {
        String::new()
    }
}

/// A tree that starts empty and accepts hashes only once they are proven against
/// hashes it already trusts (normally the root, set first from a trusted source).
/// Mirrors Tahoe's `IncompleteHashTree.set_hashes`: all or nothing.
#[derive(Clone, Debug)]
pub struct IncompleteHashTree {
    nodes: Vec<Option<Hash>>,
    first_leaf: usize,
}

impl IncompleteHashTree {
    pub fn new(num_leaves: usize) -> Self {
        let len = tree_len(num_leaves);
        IncompleteHashTree {
            nodes: vec![None; len],
            first_leaf: roundup_pow2(num_leaves) - 1,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<Hash> {
        self.nodes.get(index).copied().flatten()
    }

    pub fn leaf(&self, leaf: usize) -> Option<Hash> {
        self.get(self.first_leaf + leaf)
    }

    /// Which hashes are still needed to validate leaf `leaf`.
    pub fn needed_hashes(&self, leaf: usize, include_leaf: bool) -> BTreeSet<usize> {
        let mut set = needed_hashes(self.first_leaf, self.nodes.len(), leaf, include_leaf);
        set.retain(|&j| self.nodes[j].is_none());
        set
    }

    /// Trust `root` (it came from a cap or a signed prefix).
    pub fn set_root(&mut self, root: Hash) -> Result<(), HashTreeError> {
        self.set_hashes(&BTreeMap::from([(0, root)]), &BTreeMap::new())
    }

    /// Add `hashes` (by node index) and `leaves` (by leaf number). Every new hash must
    /// be provable against hashes already held (or the root, if it is among `hashes`).
    /// On error nothing is kept.
    pub fn set_hashes(
        &mut self,
        hashes: &BTreeMap<usize, Hash>,
        leaves: &BTreeMap<usize, Hash>,
    ) -> Result<(), HashTreeError> {
        let len = self.nodes.len();
        let mut new: BTreeMap<usize, Hash> = BTreeMap::new();
        let add = |new: &mut BTreeMap<usize, Hash>, i: usize, h: Hash| {
            if i >= len {
                return Err(HashTreeError::OutOfRange { index: i, len });
            }
            let known = self.nodes[i].or_else(|| new.get(&i).copied());
            match known {
                Some(k) if k != h => Err(HashTreeError::BadHash {
                    index: i,
                    len,
                    first_leaf: self.first_leaf,
                }),
                Some(_) => Ok(()),
                None => {
                    new.insert(i, h);
                    Ok(())
                }
            }
        };
        for (&i, h) in hashes {
            add(&mut new, i, *h)?;
        }
        for (&l, h) in leaves {
            let i = self.first_leaf.saturating_add(l);
            add(&mut new, i, *h)?;
        }
        // Check every new node against its parent, deepest first (children have
        // larger indices than their parents). Computed parents join the new set.
        let mut pending: BTreeSet<usize> = new.keys().copied().filter(|&i| i != 0).collect();
        while let Some(i) = pending.pop_last() {
            let s = sibling(i);
            let lookup = |j: usize| self.nodes[j].or_else(|| new.get(&j).copied());
            let sib = lookup(s).ok_or(HashTreeError::NotEnoughHashes {
                index: i,
                missing: s,
            })?;
            let me = lookup(i).expect("pending nodes are known");
            let (l, r) = if i % 2 == 1 { (me, sib) } else { (sib, me) };
            let computed = pair_hash(&l, &r);
            let p = parent(i);
            match lookup(p) {
                Some(existing) if existing != computed => {
                    // The parent is trusted (or checked later); the child side is wrong.
                    return Err(HashTreeError::BadHash {
                        index: i,
                        len,
                        first_leaf: self.first_leaf,
                    });
                }
                Some(_) => {
                    if self.nodes[s].is_none() {
                        // a provided sibling is proven by the same check
                        pending.remove(&s);
                    }
                }
                None => {
                    new.insert(p, computed);
                    pending.remove(&s);
                    if p != 0 {
                        pending.insert(p);
                    }
                }
            }
        }
        if self.nodes[0].is_none() && !new.contains_key(&0) {
            return Err(HashTreeError::NotEnoughHashes {
                index: 0,
                missing: 0,
            });
        }
        if new.contains_key(&0) && self.nodes[0].is_none() && !hashes.contains_key(&0) {
            // The root was computed, not given: nothing trusted anchors these hashes.
            return Err(HashTreeError::NotEnoughHashes {
                index: 0,
                missing: 0,
            });
        }
        for (i, h) in new {
            self.nodes[i] = Some(h);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| tagged_hash(b"tag", i.to_string().as_bytes()))
            .collect()
    }

    #[test]
    fn shapes() {
        assert_eq!(HashTree::new(&[]).root(), empty_leaf_hash(0));
        let one = leaves(1);
        assert_eq!(HashTree::new(&one).root(), one[0]);
        assert_eq!(HashTree::new(&leaves(3)).nodes().len(), 7);
        assert_eq!(HashTree::new(&leaves(3)).nodes()[6], empty_leaf_hash(3));
        assert_eq!(
            HashTree::new(&leaves(8)).needed_hashes(0, false),
            BTreeSet::from([2, 4, 8])
        );
        assert_eq!(
            HashTree::new(&leaves(8)).needed_hashes(0, true),
            BTreeSet::from([2, 4, 7, 8])
        );
    }

    #[test]
    fn incomplete_tree_accepts_every_valid_chain() {
        for n in [1usize, 2, 3, 5, 8, 9] {
            let t = HashTree::new(&leaves(n));
            for leaf in 0..n {
                let mut it = IncompleteHashTree::new(n);
                it.set_root(t.root()).unwrap();
                let chain: BTreeMap<_, _> = t.chain(leaf, false).into_iter().collect();
                it.set_hashes(
                    &chain,
                    &BTreeMap::from([(leaf, t.nodes()[t.num_leaf_slots() - 1 + leaf])]),
                )
                .unwrap();
                assert!(it.needed_hashes(leaf, true).is_empty());
            }
        }
    }

    #[test]
    fn incomplete_tree_rejects_bad_leaf_and_bad_chain_atomically() {
        let t = HashTree::new(&leaves(5));
        let mut it = IncompleteHashTree::new(5);
        it.set_root(t.root()).unwrap();
        let chain: BTreeMap<_, _> = t.chain(2, false).into_iter().collect();
        let bad_leaf = BTreeMap::from([(2, [0u8; 32])]);
        assert!(matches!(
            it.set_hashes(&chain, &bad_leaf),
            Err(HashTreeError::BadHash { .. })
        ));
        assert!(
            it.needed_hashes(2, true).len() == 4,
            "nothing kept after a failure"
        );
        let mut bad_chain = chain.clone();
        let k = *bad_chain.keys().next().unwrap();
        bad_chain.insert(k, [1u8; 32]);
        let good_leaf = BTreeMap::from([(2, t.nodes()[7 + 2])]);
        assert!(it.set_hashes(&bad_chain, &good_leaf).is_err());
        let mut short = chain.clone();
        short.pop_first();
        assert!(matches!(
            it.set_hashes(&short, &good_leaf),
            Err(HashTreeError::NotEnoughHashes { .. })
        ));
        assert!(matches!(
            it.set_hashes(&BTreeMap::from([(99, [0; 32])]), &BTreeMap::new()),
            Err(HashTreeError::OutOfRange { .. })
        ));
    }

    #[test]
    fn no_root_means_not_enough() {
        let t = HashTree::new(&leaves(4));
        let mut it = IncompleteHashTree::new(4);
        let chain: BTreeMap<_, _> = t.chain(1, false).into_iter().collect();
        let leaf = BTreeMap::from([(1, t.nodes()[3 + 1])]);
        assert!(it.set_hashes(&chain, &leaf).is_err());
    }
}
