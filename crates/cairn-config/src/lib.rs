//! cairn-config: one Tahoe-LAFS node directory, read and made as Tahoe 1.20 reads and makes
//! it. Everything here is about the directory, not about running a server or a client, so
//! a client-only node reads its configuration without linking the storage server.
//!
//! - [`config`]: `tahoe.cfg` (Python `ConfigParser` rules), the node and storage keys,
//!   cairn's `[cairn]` limits, listener endpoints, the text of a new `tahoe.cfg`
//! - [`expire`]: the `[storage] expire.*` lease-expiry settings
//! - [`client`]: the client's and web gateway's keys, the secrets in `private/`
//! - [`identity`]: TLS certificate, tubid, SPKI hash, swissnum, NURLs, server id, announcement
//! - [`ports`]: listening ports chosen outside the ephemeral range; who holds a taken one
//! - [`create`]: `cairn create-node` and `cairn create-client`

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod config;
pub mod create;
pub mod expire;
pub mod identity;
pub mod ports;
