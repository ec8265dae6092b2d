//! cairn-storage: a Tahoe-LAFS 1.20 compatible storage server.
//!
//! The byte formats (share containers, leases, the HTTP protocol's messages) live in
//! `cairn_core::storage`; this crate does the I/O: files, SQLite, sockets, TLS, time.
//!
//! - [`clock`]: the date, passed in (`SystemClock`, or a `ManualClock` in tests)
//! - [`config`]: `tahoe.cfg` as Tahoe reads it, and cairn's limits
//! - [`identity`]: TLS certificate, tubid, SPKI hash, swissnum, NURLs, server id, announcement
//! - [`store`]: the share directories: uploads, durable renames, atomic mutable writes
//! - [`leasedb`]: the lease database (accounting, reconcile, audit, GC)
//! - [`http`]: the HTTP storage protocol endpoints
//! - [`ports`]: listening ports chosen outside the ephemeral range; who holds a taken one
//! - [`server`]: node creation, the run loop, shutdown, background crawler and GC

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod config;
pub mod http;
pub mod identity;
pub mod leasedb;
pub mod ports;
pub mod server;
pub mod store;
