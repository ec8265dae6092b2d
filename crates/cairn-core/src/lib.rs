//! cairn-core: the pure logic of cairn, byte-compatible with Tahoe-LAFS 1.20.
//!
//! This crate does no I/O. It has no async runtime, opens no files or sockets, reads no
//! clock and owns no global random generator: randomness and keys are passed in by the
//! caller. `.ci/check-core-purity.sh` fails the build if that changes.
//!
//! Layers, bottom up:
//! - [`base32`], [`netstring`], [`hashutil`] (every Tahoe hash tag), [`crypto`] (AES-128-CTR),
//!   [`hashtree`] (Tahoe's Merkle trees)
//! - [`bytes`]: the one checked big-endian reader every binary parser uses
//! - [`ids`]: the share number, server index and storage index newtypes
//! - [`fec`]: zfec-compatible Reed-Solomon erasure coding
//! - [`cap`]: one type per capability kind
//! - [`chk`]: immutable files (parameters, UEB, share layouts, streaming encoder, verifying decoder)
//! - [`mutable`]: SDMF/MDMF keys, signatures and share layouts
//! - [`permute`], [`placement`]: Tahoe's per-file server order and share placement
//! - [`storage`]: share containers and leases on disk, mutable test-and-write semantics,
//!   the HTTP storage protocol's messages

pub mod base32;
pub mod bytes;
pub mod cap;
pub mod chk;
pub mod client;
pub mod crypto;
pub mod dirnode;
pub mod fec;
pub mod hashtree;
pub mod hashutil;
pub mod ids;
pub mod mutable;
pub mod netstring;
pub mod permute;
pub mod placement;
pub mod sha256mb;
pub mod storage;
