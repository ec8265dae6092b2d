//! The grid client's protocol logic as explicit state machines: the caller feeds events
//! (a response, an error, a timeout, the current time) and carries out the actions the
//! machine returns (requests to send). No I/O, no clock, no randomness here; the I/O driver
//! in `cairn-client` owns one machine per operation and never re-enters it.
//!
//! - [`machine`]: the one shape every machine has ([`machine::Machine`]), which one
//!   driver runs.
//! - [`upload`]: locating and allocating share holders for a CHK upload with Tahoe's
//!   servers-of-happiness placement, and losing holders mid-upload.
//! - [`download`]: choosing share holders, fetching and verifying blocks, switching away
//!   from servers that fail, stall or send corrupt data.
//! - [`compose`]: decisions that combine the mutable machines (first-read reuse, the
//!   in-place-or-whole modify decision, collision recovery as a composite machine).
//! - [`mutable`]: mutable files: the servermap update (who holds which version) and
//!   publish (placing a new version with test-and-write, losing servers without mistaking
//!   a disconnect for another writer).

pub mod compose;
pub mod download;
#[macro_use]
pub mod machine;
pub mod mutable;
pub mod upload;
