//! cairn-client: the grid client's I/O, bottom layer first.
//!
//! - [`gbs_client`]: one storage server over Tahoe's HTTP storage protocol ("Great Black
//!   Swamp"): TLS pinned to the NURL's SPKI hash exactly as Tahoe's client does, pooled
//!   HTTP/1.1, per-request timeouts, bounded retries of idempotent requests, response size
//!   limits, typed errors that say whose fault a failure is.
//! - [`servers`]: Tahoe's `private/servers.yaml` (static server announcements), with the
//!   permutation seed and lease / write-enabler seed derived as Tahoe derives them, and the
//!   per-file server order ([`cairn_core::permute`]).
//!
//! See `docs/client.md`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod download;
pub mod driver;
pub mod gbs_client;
pub mod grid;
pub mod keypool;
pub mod mutable;
pub mod servers;
pub mod upload;

pub use gbs_client::{
    ClientOptions, ClientStats, Fault, GbsClient, GbsClientError, RetryPolicy, WriteResult,
};
pub use cairn_core::client::machine::{Problem, ProblemKind};
pub use grid::{Grid, ServerEntry, ServerHealth};
pub use servers::{parse_servers_yaml, ServersFile, StaticServer};
