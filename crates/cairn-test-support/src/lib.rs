//! Fixtures shared by the tests of every cairn crate (a dev-dependency only; never
//! published). One module per kind of fixture:
//!
//! * [`data`]: the seeded data generator, and the k-subsets of share numbers.
//! * [`fixtures`]: the test keys of `vectors/mutable_keys/` and encoded mutable versions.
//! * [`fake_grid`]: the in-memory grid the core's mutable machine tests drive, and its
//!   servermap-update drivers.
//! * [`stepping`]: the bounded stepping loop every machine driver runs in.
//! * [`sim`]: the one simulated executor: any core machine against simulated servers, on
//!   virtual time, with seeded faults, and the seed runner every simulation reports through.
//!
//! With the `io` feature:
//!
//! * [`storage_node`]: one in-process storage server (the one way tests start them), and
//!   node directories (`cairn create-node`'s, Tahoe's own).
//! * [`grid`]: a grid of N in-process storage servers and a `cairn_client::Grid` over them;
//!   placing a CHK file's shares by hand and reading them back from disk.
//! * [`tls`]: the SPKI-pinned TLS client configuration, NURLs, a canned-answer TLS server.
//! * [`proxy`]: TCP proxies that count, delay or stall, and a listener that never answers.
//! * [`gbs_raw`]: a raw HTTP client of the storage protocol (requests as bytes, secrets as
//!   headers) and a directory snapshot.
//! * [`containers`]: share container files and leases for the lease-database tests.
//! * [`http`]: a one-request-per-connection HTTP/1.1 client of a node's web gateway.
//! * [`cli`]: running the `cairn` binary, and reading what `cairn grid up` leaves.

pub mod data;
pub mod fake_grid;
pub mod fixtures;
pub mod sim;
pub mod stepping;

#[cfg(feature = "io")]
pub mod cli;
#[cfg(feature = "io")]
pub mod containers;
#[cfg(feature = "io")]
pub mod gbs_raw;
#[cfg(feature = "io")]
pub mod grid;
#[cfg(feature = "io")]
pub mod http;
#[cfg(feature = "io")]
pub mod proxy;
#[cfg(feature = "io")]
pub mod storage_node;
#[cfg(feature = "io")]
pub mod tls;
