//! Immutable allocation, pure (`storage/server.py::allocate_buckets`): which of the shares a
//! client asks to upload the server takes, beside [`super::rtw`] for mutable writes. The I/O
//! layer then reserves space and creates the `incoming/` file of each share in the plan, and
//! renews the client's lease on every share already held.

use std::collections::BTreeSet;

use crate::ids::ShareNum;

/// What bounds an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocateLimits {
    /// Bytes new uploads may take: free space less the reserve less uploads in progress.
    pub available: u64,
    /// The largest immutable share this server takes.
    pub max_share_size: u64,
    /// Uploads in progress the server allows at once.
    pub max_concurrent_uploads: usize,
}

/// What the server holds of this storage index, and how busy it is.
#[derive(Debug, Clone, Copy)]
pub struct AllocateState<'a> {
    /// Finished shares of this storage index.
    pub existing: &'a BTreeSet<ShareNum>,
    /// Shares of this storage index being uploaded (a second writer is refused).
    pub uploading: &'a BTreeSet<ShareNum>,
    /// Uploads in progress on the whole server.
    pub uploads_in_progress: usize,
}

/// The decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocationPlan {
    /// Every share already held (Tahoe reports them all, asked for or not; their leases
    /// are renewed).
    pub already_have: BTreeSet<ShareNum>,
    /// The shares to allocate, in the order asked.
    pub allocate: Vec<ShareNum>,
}

/// Decide which of `requested` to allocate, each of `allocated_size` bytes: not one already
/// held or being uploaded, none larger than the limit, as many as fit the space and the
/// concurrency limit, in order (Tahoe's `allocate_buckets` takes the same greedy pass).
pub fn plan(
    requested: impl IntoIterator<Item = ShareNum>,
    allocated_size: u64,
    state: AllocateState<'_>,
    limits: AllocateLimits,
) -> AllocationPlan {
    let mut out = AllocationPlan {
        already_have: state.existing.clone(),
        allocate: Vec::new(),
    };
    let mut remaining = limits.available;
    for shnum in requested {
        if state.existing.contains(&shnum)
            || state.uploading.contains(&shnum)
            || out.allocate.contains(&shnum)
        {
            continue;
        }
        if allocated_size > limits.max_share_size || remaining < allocated_size {
            continue;
        }
        if state.uploads_in_progress + out.allocate.len() >= limits.max_concurrent_uploads {
            continue;
        }
        remaining -= allocated_size;
        out.allocate.push(shnum);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(v: &[u8]) -> BTreeSet<ShareNum> {
        v.iter().copied().map(ShareNum).collect()
    }

    #[test]
    fn held_shares_are_reported_and_not_allocated_again() {
        let existing = set(&[1, 7]);
        let uploading = set(&[2]);
        let p = plan(
            [0, 1, 2, 3].map(ShareNum),
            100,
            AllocateState {
                existing: &existing,
                uploading: &uploading,
                uploads_in_progress: 1,
            },
            AllocateLimits {
                available: 250,
                max_share_size: 1000,
                max_concurrent_uploads: 10,
            },
        );
        assert_eq!(p.already_have, set(&[1, 7]));
        assert_eq!(p.allocate, vec![ShareNum(0), ShareNum(3)]);
    }

    proptest! {
        #[test]
        fn a_plan_respects_every_bound_and_takes_all_that_fits(
            requested in proptest::collection::vec((0u8..12).prop_map(ShareNum), 0..14),
            existing in proptest::collection::btree_set((0u8..12).prop_map(ShareNum), 0..5),
            uploading in proptest::collection::btree_set((0u8..12).prop_map(ShareNum), 0..4),
            size in 1u64..200,
            available in 0u64..1500,
            max_share_size in 50u64..250,
            busy in 0usize..6,
            max_concurrent in 0usize..8,
        ) {
            let limits = AllocateLimits { available, max_share_size, max_concurrent_uploads: max_concurrent };
            let state = AllocateState { existing: &existing, uploading: &uploading, uploads_in_progress: busy };
            let p = plan(requested.iter().copied(), size, state, limits);
            prop_assert_eq!(&p.already_have, &existing);
            let taken: BTreeSet<ShareNum> = p.allocate.iter().copied().collect();
            prop_assert_eq!(taken.len(), p.allocate.len(), "a share allocated twice");
            for sh in &p.allocate {
                prop_assert!(requested.contains(sh));
                prop_assert!(!existing.contains(sh) && !uploading.contains(sh));
            }
            prop_assert!(p.allocate.len() as u64 * size <= available);
            if !p.allocate.is_empty() {
                prop_assert!(size <= max_share_size);
                prop_assert!(busy + p.allocate.len() <= max_concurrent);
            }
            // Nothing that would have fit was left out.
            let room = available / size;
            let slots = max_concurrent.saturating_sub(busy) as u64;
            let wanted: BTreeSet<ShareNum> = requested.iter().copied()
                .filter(|s| !existing.contains(s) && !uploading.contains(s)).collect();
            if size <= max_share_size {
                let expect = (wanted.len() as u64).min(room).min(slots);
                prop_assert_eq!(p.allocate.len() as u64, expect);
            } else {
                prop_assert!(p.allocate.is_empty());
            }
        }
    }
}
