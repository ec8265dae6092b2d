//! Mutable file caps: SDMF (`URI:SSK*`) and MDMF (`URI:MDMF*`).
//!
//! Both formats have the same fields: a write cap holds the 16-byte writekey and the
//! 32-byte fingerprint of the RSA verification key; the read cap holds the readkey
//! (`ssk_readkey_hash(writekey)`) and the fingerprint; the verify cap holds the storage
//! index (`ssk_storage_index_hash(readkey)`) and the fingerprint.

use core::fmt;

use super::{ReadKey, StorageIndex, WriteKey};
use crate::{base32, hashutil};

/// The on-grid format of a mutable file (one definition, shared with the share layouts).
pub use crate::mutable::MutableFormat;

fn readkey_of(wk: &WriteKey) -> ReadKey {
    ReadKey::new(hashutil::ssk_readkey_hash(wk.as_bytes()))
}

fn si_of(rk: &ReadKey) -> StorageIndex {
    StorageIndex(hashutil::ssk_storage_index_hash(rk.as_bytes()))
}

macro_rules! mutable_caps {
    (
        $format:ident,
        $write:ident, $wprefix:literal, $wname:literal,
        $read:ident, $rprefix:literal, $rname:literal,
        $verify:ident, $vprefix:literal, $vname:literal
    ) => {
        #[doc = concat!("`", $wprefix, "<writekey>:<fingerprint>`: ", $wname, " write cap.")]
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $write {
            writekey: WriteKey,
            fingerprint: [u8; 32],
        }

        impl $write {
            /// Build from the raw writekey and the verification-key fingerprint.
            pub fn new(writekey: [u8; 16], fingerprint: [u8; 32]) -> Self {
                $write { writekey: WriteKey::new(writekey), fingerprint }
            }

            /// The writekey (secret).
            pub fn writekey(&self) -> &WriteKey {
                &self.writekey
            }

            /// The readkey derived from the writekey (secret).
            pub fn readkey(&self) -> ReadKey {
                readkey_of(&self.writekey)
            }

            /// Fingerprint of the RSA verification key.
            pub fn fingerprint(&self) -> &[u8; 32] {
                &self.fingerprint
            }

            /// `ssk_storage_index_hash(ssk_readkey_hash(writekey))`.
            pub fn storage_index(&self) -> StorageIndex {
                si_of(&self.readkey())
            }

            /// The read cap.
            pub fn readonly(&self) -> $read {
                $read { readkey: self.readkey(), fingerprint: self.fingerprint }
            }

            /// The verify cap.
            pub fn verifier(&self) -> $verify {
                $verify { storage_index: self.storage_index(), fingerprint: self.fingerprint }
            }

            /// The format (SDMF or MDMF).
            pub fn format(&self) -> MutableFormat {
                MutableFormat::$format
            }

            pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.writekey.to_base32(), base32::encode(&self.fingerprint))
            }
        }

        impl fmt::Display for $write {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($wprefix)?;
                self.fmt_body(f)
            }
        }

        impl fmt::Debug for $write {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($write))
                    .field("writekey", &self.writekey)
                    .field("storage_index", &self.storage_index())
                    .field("fingerprint", &base32::encode(&self.fingerprint))
                    .finish()
            }
        }

        #[doc = concat!("`", $rprefix, "<readkey>:<fingerprint>`: ", $rname, " read cap.")]
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $read {
            readkey: ReadKey,
            fingerprint: [u8; 32],
        }

        impl $read {
            /// Build from the raw readkey and the verification-key fingerprint.
            pub fn new(readkey: [u8; 16], fingerprint: [u8; 32]) -> Self {
                $read { readkey: ReadKey::new(readkey), fingerprint }
            }

            /// The readkey (secret).
            pub fn readkey(&self) -> &ReadKey {
                &self.readkey
            }

            /// Fingerprint of the RSA verification key.
            pub fn fingerprint(&self) -> &[u8; 32] {
                &self.fingerprint
            }

            /// `ssk_storage_index_hash(readkey)`.
            pub fn storage_index(&self) -> StorageIndex {
                si_of(&self.readkey)
            }

            /// The verify cap.
            pub fn verifier(&self) -> $verify {
                $verify { storage_index: self.storage_index(), fingerprint: self.fingerprint }
            }

            /// The format (SDMF or MDMF).
            pub fn format(&self) -> MutableFormat {
                MutableFormat::$format
            }

            pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.readkey.to_base32(), base32::encode(&self.fingerprint))
            }
        }

        impl fmt::Display for $read {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($rprefix)?;
                self.fmt_body(f)
            }
        }

        impl fmt::Debug for $read {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($read))
                    .field("readkey", &self.readkey)
                    .field("storage_index", &self.storage_index())
                    .field("fingerprint", &base32::encode(&self.fingerprint))
                    .finish()
            }
        }

        #[doc = concat!("`", $vprefix, "<storage index>:<fingerprint>`: ", $vname, " verify cap (not secret).")]
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $verify {
            storage_index: StorageIndex,
            fingerprint: [u8; 32],
        }

        impl $verify {
            /// Build from the storage index and the verification-key fingerprint.
            pub fn new(storage_index: StorageIndex, fingerprint: [u8; 32]) -> Self {
                $verify { storage_index, fingerprint }
            }

            /// The storage index (carried in the cap).
            pub fn storage_index(&self) -> StorageIndex {
                self.storage_index
            }

            /// Fingerprint of the RSA verification key.
            pub fn fingerprint(&self) -> &[u8; 32] {
                &self.fingerprint
            }

            /// The format (SDMF or MDMF).
            pub fn format(&self) -> MutableFormat {
                MutableFormat::$format
            }

            pub(crate) fn fmt_body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.storage_index, base32::encode(&self.fingerprint))
            }
        }

        impl fmt::Display for $verify {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($vprefix)?;
                self.fmt_body(f)
            }
        }

        impl fmt::Debug for $verify {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($verify))
                    .field("storage_index", &self.storage_index)
                    .field("fingerprint", &base32::encode(&self.fingerprint))
                    .finish()
            }
        }
    };
}

mutable_caps!(
    Sdmf,
    SdmfWriteCap,
    "URI:SSK:",
    "SDMF",
    SdmfReadCap,
    "URI:SSK-RO:",
    "SDMF",
    SdmfVerifyCap,
    "URI:SSK-Verifier:",
    "SDMF"
);
mutable_caps!(
    Mdmf,
    MdmfWriteCap,
    "URI:MDMF:",
    "MDMF",
    MdmfReadCap,
    "URI:MDMF-RO:",
    "MDMF",
    MdmfVerifyCap,
    "URI:MDMF-Verifier:",
    "MDMF"
);
