//! Decisions that combine the mutable machines, kept here rather than in the tokio driver
//! so they are pure (unit-tested, and runnable under the simulation):
//!
//! - [`first_reads`]: the servermap's first read of each share, kept so a later read it
//!   covers (a retrieve's, an update's) is answered without asking the server again.
//! - [`modify`]: whether an MDMF byte-range change is written in place (only the affected
//!   segments) or the whole file is republished, and what to do when an in-place attempt
//!   falls short.
//! - [`collision`]: after a publish collided with another writer, a check-mode servermap
//!   update and then, if the newest version is not recoverable, a republish of the best
//!   one; a composite [`crate::client::machine::Machine`] with a typed outcome.
//! - [`verify_chk`]: a CHK download that also reads and verifies every share found,
//!   reporting each as good, corrupt (and where) or unreachable.

pub mod collision;
pub mod first_reads;
pub mod modify;
pub mod verify_chk;
