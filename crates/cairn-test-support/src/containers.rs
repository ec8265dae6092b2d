//! Share container files for the lease-database tests, built with the core's container
//! module: immutable and mutable shares with given leases, written where a store keeps
//! them, and the lease records and database rows they should produce.

use std::path::{Path, PathBuf};

use cairn_core::cap::StorageIndex;
use cairn_core::storage::container::{
    ImmutableContainer, ImmutableContainerHeader, ImmutableVersion, LeaseGrant, LeaseRecord,
    LeaseSecret, MutableContainer, MutableVersion, SecretForm,
};
use cairn_storage::leasedb::{AccountId, Lease, ShareKey};

pub const NODEID: [u8; 20] = [7u8; 20];

pub fn si(n: u8) -> StorageIndex {
    let mut b = [0u8; 16];
    b[0] = n.wrapping_mul(37);
    b[15] = n;
    StorageIndex(b)
}

pub fn key(n: u8, shnum: u8) -> ShareKey {
    ShareKey::new(si(n), cairn_core::ids::ShareNum(shnum))
}

pub fn secret(n: u8) -> [u8; 32] {
    [n; 32]
}

/// The lease record a container gets for owner `owner`, renew secret `secret(s)`.
pub fn record(owner: u32, s: u8, expiration: u32, mutable: bool) -> LeaseRecord {
    LeaseRecord {
        owner_num: owner,
        renew_secret: LeaseSecret::store(SecretForm::Hashed, &secret(s)),
        cancel_secret: LeaseSecret::store(SecretForm::Hashed, &[s ^ 0xff; 32]),
        expiration_secs: expiration,
        nodeid: if mutable { Some(NODEID) } else { None },
    }
}

/// The database form of that lease.
pub fn lease(owner: u32, s: u8, expiration: u32) -> Lease {
    let l = Lease::from_record(&record(owner, s, expiration, false));
    assert_eq!(l.account, AccountId(owner));
    l
}

pub fn immutable_bytes(data_len: usize, leases: &[LeaseRecord]) -> Vec<u8> {
    let mut header = ImmutableContainerHeader::for_new_share(ImmutableVersion::V2, data_len as u64);
    header.num_leases = leases.len() as u32;
    ImmutableContainer {
        header,
        data: vec![0xab; data_len],
        leases: leases.to_vec(),
    }
    .to_bytes()
}

pub fn mutable_bytes(data_len: usize, leases: &[(u32, u8, u32)]) -> Vec<u8> {
    let mut c = MutableContainer::new(MutableVersion::V2, NODEID, [9u8; 32]);
    c.container_data = vec![0x5a; data_len];
    c.header.data_length = data_len as u64;
    c.header.extra_lease_offset += data_len as u64;
    for &(owner, s, exp) in leases {
        let grant = LeaseGrant {
            owner_num: owner,
            renew_secret: secret(s),
            cancel_secret: [s ^ 0xff; 32],
            expiration_secs: exp,
            nodeid: NODEID,
        };
        c.leases.add_or_renew(&grant, None).expect("add lease");
    }
    c.to_bytes()
}

pub fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Write an immutable share into `shares/`; returns its size.
pub fn put_immutable(dir: &Path, k: &ShareKey, data_len: usize, leases: &[LeaseRecord]) -> u64 {
    let b = immutable_bytes(data_len, leases);
    write_file(&k.share_path(dir), &b);
    b.len() as u64
}

/// Write a mutable share into `shares/`; returns its size.
pub fn put_mutable(dir: &Path, k: &ShareKey, data_len: usize, leases: &[(u32, u8, u32)]) -> u64 {
    let b = mutable_bytes(data_len, leases);
    write_file(&k.share_path(dir), &b);
    b.len() as u64
}

pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().to_path_buf();
    std::fs::create_dir_all(p.join("shares").join("incoming")).unwrap();
    (t, p)
}
