//! cairn-storage: a Tahoe-LAFS 1.20 compatible storage server.
//!
//! The byte formats (share containers, leases, the HTTP protocol's messages) live in
//! `cairn_core::storage`; this crate does the I/O: files, SQLite, sockets, TLS, time.
//!
//! - [`clock`]: the date, passed in (`SystemClock`, or a `ManualClock` in tests)
//! - [`config`], [`identity`], [`ports`]: re-exported from `cairn_config`, which owns the node
//!   directory (`tahoe.cfg`, identity, listening ports, node creation)
//! - [`store`]: the share directories: uploads, durable renames, atomic mutable writes
//! - [`leasedb`]: the lease database (accounting, reconcile, audit, GC)
//! - [`http`]: the HTTP storage protocol endpoints
//! - [`server`]: the run loop, shutdown, background crawler and GC

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod http;
pub mod leasedb;
pub mod server;
pub mod store;

pub use cairn_config::{config, identity, ports};
