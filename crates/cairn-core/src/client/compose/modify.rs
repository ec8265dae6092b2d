//! The in-place-or-whole decision of an MDMF byte-range change ("modify"): given the
//! write-mode servermap, whether only the affected segments are rewritten in place
//! ([`crate::mutable::update`]) or the file is read whole, changed and republished with the
//! next sequence number; which old plaintext an in-place change reads; and what follows
//! an in-place attempt that fell short.
//!
//! In place only when every one of these holds (anything else is a whole republish):
//! the file is MDMF; the best recoverable version is also the newest, the only version
//! on the grid, with no bad shares seen; every share `0..N` of it was found; the change
//! starts inside the file (a hole past the end is written whole); and the file has at
//! least two segments (one segment is cheaper to republish than to patch).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::client::mutable::{ServerIndex, ServerMap, ShareNum, VersionId};
use crate::mutable::update::{self, UpdatePlan};
use crate::mutable::MutableFormat;

/// What an offset past the end of the file means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PastEnd {
    /// Zeros fill the gap.
    FillZeros,
    /// Tahoe's web API (`PUT /uri/$WRITECAP?offset=N`): SDMF writes at the end instead
    /// (`old[:offset] + data + old[offset + len:]`), MDMF refuses.
    Tahoe,
}

/// Why a change cannot be made at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModifyError {
    #[error("no version of the file is recoverable")]
    Unrecoverable,
    /// An MDMF change starting past the end under [`PastEnd::Tahoe`].
    #[error("offset {offset} is beyond the end of the file ({size} bytes)")]
    OffsetPastEnd { offset: u64, size: u64 },
}

/// Why the whole file is republished rather than changed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WholeReason {
    Sdmf,
    /// Another version (older or newer) or a share that failed its checks is on the grid.
    OtherVersionsOrBadShares,
    /// Some share of the version was not found.
    MissingShares,
    /// The change starts past the end of the file (a hole).
    PastTheEnd,
    /// A one-segment file is cheaper to republish whole.
    OneSegment,
}

impl WholeReason {
    pub fn describe(self) -> &'static str {
        match self {
            WholeReason::Sdmf => "SDMF files are republished whole",
            WholeReason::OtherVersionsOrBadShares => "other versions or bad shares are on the grid",
            WholeReason::MissingShares => "not every share of the version was found",
            WholeReason::PastTheEnd => "the change cannot be applied in place (past the end)",
            WholeReason::OneSegment => "a one-segment file is cheaper to republish whole",
        }
    }
}

/// An in-place change: what it rewrites and where the shares are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InPlace {
    /// The version being changed (the newest, and the only one on the grid).
    pub version: VersionId,
    pub plan: UpdatePlan,
    /// Every share of the version and the servers holding it.
    pub holders: BTreeMap<ShareNum, BTreeSet<ServerIndex>>,
    /// The sequence number of the new version.
    pub seqnum: u64,
}

/// How a change is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    InPlace(Box<InPlace>),
    Whole(WholeReason),
}

/// The decision for one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Where the new bytes go (after the [`PastEnd`] rule).
    pub offset: u64,
    /// The size of the version being changed.
    pub size: u64,
    pub how: How,
}

/// Decide how to write `len` bytes at `offset` of the file `map` describes (a write-mode
/// servermap).
pub fn decide(
    map: &ServerMap,
    offset: u64,
    len: u64,
    past_end: PastEnd,
) -> Result<Decision, ModifyError> {
    let best = map
        .best_recoverable_version()
        .ok_or(ModifyError::Unrecoverable)?;
    let size = best.data_length;
    let offset = match (past_end, best.format) {
        (PastEnd::Tahoe, _) if offset <= size => offset,
        (PastEnd::Tahoe, MutableFormat::Sdmf) => size,
        (PastEnd::Tahoe, MutableFormat::Mdmf) => {
            return Err(ModifyError::OffsetPastEnd { offset, size })
        }
        (PastEnd::FillZeros, _) => offset,
    };
    let how = match in_place(map, &best, offset, len) {
        Ok(p) => How::InPlace(Box::new(p)),
        Err(why) => How::Whole(why),
    };
    Ok(Decision { offset, size, how })
}

fn in_place(
    map: &ServerMap,
    best: &VersionId,
    offset: u64,
    len: u64,
) -> Result<InPlace, WholeReason> {
    if best.format != MutableFormat::Mdmf {
        return Err(WholeReason::Sdmf);
    }
    if best.seqnum != map.highest_seqnum()
        || map.shares().values().any(|v| v != best)
        || !map.bad_shares().is_empty()
    {
        return Err(WholeReason::OtherVersionsOrBadShares);
    }
    let holders = map.versions().remove(best).unwrap_or_default();
    if ShareNum::below(best.n.into()).any(|sh| !holders.contains_key(&sh)) {
        return Err(WholeReason::MissingShares);
    }
    let plan = update::plan(&best.header(), offset, len).map_err(|_| WholeReason::PastTheEnd)?;
    if plan.old_params.num_segments < 2 {
        return Err(WholeReason::OneSegment);
    }
    Ok(InPlace {
        version: best.clone(),
        plan,
        holders,
        seqnum: map.highest_seqnum() + 1,
    })
}

/// The ranged reads of old plaintext an in-place change needs (the bytes it keeps around
/// the new ones in the first and last affected segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeptReads {
    /// The change covers whole segments (or the end of the file).
    Nothing,
    Head(Range<u64>),
    Tail(Range<u64>),
    /// Head and tail lie in one segment or neighbours: one read of `range`, then head is
    /// its first `head_len` bytes and tail starts at `tail_from` within it.
    Joined {
        range: Range<u64>,
        head_len: u64,
        tail_from: u64,
    },
    /// Head and tail far apart: two reads.
    Both {
        head: Range<u64>,
        tail: Range<u64>,
    },
}

/// Which reads [`KeptReads`] the plan needs.
pub fn kept_reads(plan: &UpdatePlan) -> KeptReads {
    let (h, t) = (plan.keep_head.clone(), plan.keep_tail.clone());
    match (h.is_empty(), t.is_empty()) {
        (true, true) => KeptReads::Nothing,
        (false, true) => KeptReads::Head(h),
        (true, false) => KeptReads::Tail(t),
        (false, false)
            if plan.old_segments.len() < 2 || t.start - h.end <= plan.old_params.segment_size =>
        {
            KeptReads::Joined {
                head_len: h.end - h.start,
                tail_from: t.start - h.start,
                range: h.start..t.end,
            }
        }
        (false, false) => KeptReads::Both { head: h, tail: t },
    }
}

/// How an in-place attempt fell short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setback {
    /// The old plaintext around the change could not be read.
    OldPlaintextUnreadable,
    /// Some share's header or hash nodes could not be read (nothing was written).
    OldSharesUnreadable,
    /// The old shares do not allow an in-place update (layout, bad hashes; nothing
    /// was written).
    NotComputable,
    /// The publish reached too few servers; some may hold the new version.
    TooFewServers,
    /// Anything else (a collision, a local failure).
    Other,
}

/// What follows a [`Setback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSetback {
    /// Republish the whole file from the same servermap (nothing was written).
    Whole,
    /// A fresh write-mode servermap first (it sees which version is now best; if it is
    /// the new one the change is already in it), then republish whole.
    RefreshThenWhole,
    /// Give up with the setback's error (a whole publish would not fix it).
    Fail,
}

pub fn after_setback(s: Setback) -> AfterSetback {
    match s {
        Setback::OldSharesUnreadable | Setback::NotComputable => AfterSetback::Whole,
        Setback::TooFewServers => AfterSetback::RefreshThenWhole,
        Setback::OldPlaintextUnreadable | Setback::Other => AfterSetback::Fail,
    }
}
