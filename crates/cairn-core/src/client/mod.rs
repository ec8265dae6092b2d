//! The grid client's protocol logic as explicit state machines: the caller feeds events
//! (a response, an error, a timeout, the current time) and carries out the actions the
//! machine returns (requests to send). No I/O, no clock, no randomness here; the I/O driver
//! in `cairn-client` owns one machine per operation and never re-enters it.
//!
//! - [`upload`]: locating and allocating share holders for a CHK upload with Tahoe's
//!   servers-of-happiness placement, and losing holders mid-upload.
//! - [`download`]: choosing share holders, fetching and verifying blocks, switching away
//!   from servers that fail, stall or send corrupt data.

pub mod download;
pub mod upload;
